"""Decode Kubernetes protobuf request bodies into the JSON-form dicts the rest of LocalKube handles.

kubectl's `create <generator>` commands (create deployment, create configmap, ...) POST their object as
`application/vnd.kubernetes.protobuf` and fail outright on a 415, so LocalKube must read that format.
We do not depend on a protobuf library: the body is a small envelope plus a handful of message types,
decoded here by a generic wire reader driven by per-message field tables.

Go semantics rebuilt on top of the wire data:

- The gogo encoder writes every non-pointer scalar, even when empty, so a zero/empty scalar is dropped
  unless its Go field is a pointer (`?`: present on the wire means set, e.g. `spec.replicas: 0`) or its
  JSON tag lacks `omitempty` (`!`: Go always prints it, e.g. `ServicePort.port`).
- Nested structs are always kept, even when empty (`resources: {}`, `strategy: {}`, `status: {}`),
  as Go's JSON encoder prints them; pointer structs such as `emptyDir: {}` are meaningful when empty.
- A zero `Time` (empty payload) becomes None, as Go prints `"creationTimestamp": null`.
- A zero non-pointer `IntOrString` or empty non-pointer `Quantity` is dropped (Go would print `0`);
  absent and zero mean the same to defaulting, and absent is what a hand-written manifest has.
- Empty lists and maps are dropped; Go prints `null` for the few without `omitempty` (`rules`, `verbs`).
- Unknown field numbers are skipped, so newer clients still decode.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any

MAGIC = b"k8s\x00"

_VARINT, _FIXED64, _LENGTH, _FIXED32 = 0, 1, 2, 5
_MAX_VARINT_BYTES = 10


class ProtobufDecodeError(ValueError):
    """The body is not a Kubernetes protobuf object we can decode (malformed or unsupported kind)."""


# ---------------------------------------------------------------------------------------------------
# Wire format
# ---------------------------------------------------------------------------------------------------


def read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    """Return (value, next position) for the unsigned varint at `pos`."""
    value = 0
    for i in range(_MAX_VARINT_BYTES):
        if pos + i >= len(buf):
            raise ProtobufDecodeError("truncated varint")
        byte = buf[pos + i]
        value |= (byte & 0x7F) << (7 * i)
        if byte < 0x80:
            return value, pos + i + 1
    raise ProtobufDecodeError("varint longer than 10 bytes")


def iter_fields(buf: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    """Yield (field number, wire type, value) for each field of one message.

    Varints and fixed-width values come back as unsigned ints, length-delimited ones as bytes.
    """
    pos = 0
    while pos < len(buf):
        key, pos = read_varint(buf, pos)
        number, wire_type = key >> 3, key & 7
        if number == 0:
            raise ProtobufDecodeError("field number 0")
        value, pos = _read_value(buf, pos, wire_type)
        yield number, wire_type, value


def _read_value(buf: bytes, pos: int, wire_type: int) -> tuple[int | bytes, int]:
    if wire_type == _VARINT:
        return read_varint(buf, pos)
    if wire_type == _LENGTH:
        length, pos = read_varint(buf, pos)
        return _take(buf, pos, length), pos + length
    if wire_type in (_FIXED64, _FIXED32):
        size = 8 if wire_type == _FIXED64 else 4
        return int.from_bytes(_take(buf, pos, size), "little"), pos + size
    raise ProtobufDecodeError(f"unsupported wire type {wire_type}")


def _take(buf: bytes, pos: int, length: int) -> bytes:
    if pos + length > len(buf):
        raise ProtobufDecodeError("truncated field")
    return bytes(buf[pos : pos + length])


def _signed(value: int) -> int:
    """Go writes negative int32/int64 as 10-byte two's complement varints."""
    value &= (1 << 64) - 1
    return value - (1 << 64) if value >= 1 << 63 else value


# ---------------------------------------------------------------------------------------------------
# Schema
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Field:
    """One message field: wire number, JSON name, type and the Go facts that shape its JSON."""

    number: int
    name: str
    type: str  # str, int, bool, bytes, a message name, or "map:<value type>"
    repeated: bool = False
    pointer: bool = False  # Go pointer: presence on the wire means "set", zero included
    required: bool = False  # JSON tag without omitempty: Go prints the zero value
    inline: bool = False  # Go embedded struct with `json:",inline"`

    @property
    def map_value(self) -> str | None:
        return self.type[4:] if self.type.startswith("map:") else None


_SCALARS = frozenset({"str", "int", "bool", "bytes"})
_SPECIALS = frozenset({"Time", "IntOrString", "Quantity", "FieldsV1"})

# Field numbers and names come from the generated.proto files of Kubernetes 1.32; pointer / omitempty /
# inline flags from the matching Go structs. One entry per message: "<number> <jsonName> <type><flags>"
# separated by "; ", flags: `*` repeated, `?` Go pointer, `!` no omitempty, `^` inline. Listed in Go
# struct order, which is also the key order of Go's JSON output. Maps are repeated {1: key, 2: value}
# entries with string keys.
MESSAGES: dict[str, str] = {
    "apps.Deployment": "1 metadata meta.ObjectMeta; 2 spec apps.DeploymentSpec; 3 status apps.DeploymentStatus",
    "apps.DeploymentCondition": (
        "1 type str!; 2 status str!; 6 lastUpdateTime Time; 7 lastTransitionTime Time; 4 reason str; 5 message str"
    ),
    "apps.DeploymentSpec": (
        "1 replicas int?; 2 selector meta.LabelSelector?; 3 template core.PodTemplateSpec; "
        "4 strategy apps.DeploymentStrategy; 5 minReadySeconds int; 6 revisionHistoryLimit int?; "
        "7 paused bool; 9 progressDeadlineSeconds int?"
    ),
    "apps.DeploymentStatus": (
        "1 observedGeneration int; 2 replicas int; 3 updatedReplicas int; 7 readyReplicas int; "
        "4 availableReplicas int; 5 unavailableReplicas int; 6 conditions apps.DeploymentCondition*; "
        "8 collisionCount int?"
    ),
    "apps.DeploymentStrategy": "1 type str; 2 rollingUpdate apps.RollingUpdateDeployment?",
    "apps.RollingUpdateDeployment": "1 maxUnavailable IntOrString?; 2 maxSurge IntOrString?",
    "autoscaling.CrossVersionObjectReference": "1 kind str!; 2 name str!; 3 apiVersion str",
    "autoscaling.HorizontalPodAutoscaler": (
        "1 metadata meta.ObjectMeta; 2 spec autoscaling.HorizontalPodAutoscalerSpec; "
        "3 status autoscaling.HorizontalPodAutoscalerStatus"
    ),
    "autoscaling.HorizontalPodAutoscalerSpec": (
        "1 scaleTargetRef autoscaling.CrossVersionObjectReference; 2 minReplicas int?; 3 maxReplicas int!; "
        "4 targetCPUUtilizationPercentage int?"
    ),
    "autoscaling.HorizontalPodAutoscalerStatus": (
        "1 observedGeneration int?; 2 lastScaleTime Time?; 3 currentReplicas int!; 4 desiredReplicas int!; "
        "5 currentCPUUtilizationPercentage int?"
    ),
    "authentication.BoundObjectReference": "1 kind str; 2 apiVersion str; 3 name str; 4 uid str",
    "authentication.TokenRequest": (
        "1 metadata meta.ObjectMeta; 2 spec authentication.TokenRequestSpec; 3 status authentication.TokenRequestStatus"
    ),
    "authentication.TokenRequestSpec": (
        "1 audiences str*; 4 expirationSeconds int?; 3 boundObjectRef authentication.BoundObjectReference?"
    ),
    "authentication.TokenRequestStatus": "1 token str!; 2 expirationTimestamp Time",
    "batch.CronJob": "1 metadata meta.ObjectMeta; 2 spec batch.CronJobSpec; 3 status batch.CronJobStatus",
    "batch.CronJobSpec": (
        "1 schedule str!; 8 timeZone str?; 2 startingDeadlineSeconds int?; 3 concurrencyPolicy str; "
        "4 suspend bool?; 5 jobTemplate batch.JobTemplateSpec; 6 successfulJobsHistoryLimit int?; "
        "7 failedJobsHistoryLimit int?"
    ),
    "batch.CronJobStatus": "1 active core.ObjectReference*; 4 lastScheduleTime Time?; 5 lastSuccessfulTime Time?",
    "batch.Job": "1 metadata meta.ObjectMeta; 2 spec batch.JobSpec; 3 status batch.JobStatus",
    "batch.JobCondition": (
        "1 type str!; 2 status str!; 3 lastProbeTime Time; 4 lastTransitionTime Time; 5 reason str; 6 message str"
    ),
    "batch.JobSpec": (
        "1 parallelism int?; 2 completions int?; 3 activeDeadlineSeconds int?; "
        "11 podFailurePolicy batch.PodFailurePolicy?; 16 successPolicy batch.SuccessPolicy?; "
        "7 backoffLimit int?; 12 backoffLimitPerIndex int?; 13 maxFailedIndexes int?; "
        "4 selector meta.LabelSelector?; 5 manualSelector bool?; 6 template core.PodTemplateSpec; "
        "8 ttlSecondsAfterFinished int?; 9 completionMode str?; 10 suspend bool?; "
        "14 podReplacementPolicy str?; 15 managedBy str?"
    ),
    "batch.JobStatus": (
        "1 conditions batch.JobCondition*; 2 startTime Time?; 3 completionTime Time?; 4 active int; "
        "5 succeeded int; 6 failed int; 11 terminating int?; 7 completedIndexes str; 10 failedIndexes str?; "
        "8 uncountedTerminatedPods batch.UncountedTerminatedPods?; 9 ready int?"
    ),
    "batch.JobTemplateSpec": "1 metadata meta.ObjectMeta; 2 spec batch.JobSpec",
    "batch.PodFailurePolicy": "1 rules batch.PodFailurePolicyRule*",
    "batch.PodFailurePolicyOnExitCodesRequirement": "1 containerName str?; 2 operator str!; 3 values int*",
    "batch.PodFailurePolicyOnPodConditionsPattern": "1 type str!; 2 status str!",
    "batch.PodFailurePolicyRule": (
        "1 action str!; 2 onExitCodes batch.PodFailurePolicyOnExitCodesRequirement?; "
        "3 onPodConditions batch.PodFailurePolicyOnPodConditionsPattern*"
    ),
    "batch.SuccessPolicy": "1 rules batch.SuccessPolicyRule*",
    "batch.SuccessPolicyRule": "1 succeededIndexes str?; 2 succeededCount int?",
    "batch.UncountedTerminatedPods": "1 succeeded str*; 2 failed str*",
    "certificates.CertificateSigningRequest": (
        "1 metadata meta.ObjectMeta; 2 spec certificates.CertificateSigningRequestSpec; "
        "3 status certificates.CertificateSigningRequestStatus"
    ),
    "certificates.CertificateSigningRequestCondition": (
        "1 type str!; 6 status str!; 2 reason str; 3 message str; 4 lastUpdateTime Time; 5 lastTransitionTime Time"
    ),
    # `extra` (6) is left out: its values are ExtraValue messages, and the server rewrites it on create anyway.
    "certificates.CertificateSigningRequestSpec": (
        "1 request bytes!; 7 signerName str!; 8 expirationSeconds int?; 5 usages str*; 2 username str; 3 uid str; "
        "4 groups str*"
    ),
    "certificates.CertificateSigningRequestStatus": (
        "1 conditions certificates.CertificateSigningRequestCondition*; 2 certificate bytes"
    ),
    "core.AWSElasticBlockStoreVolumeSource": "1 volumeID str!; 2 fsType str; 3 partition int; 4 readOnly bool",
    "core.Affinity": (
        "1 nodeAffinity core.NodeAffinity?; 2 podAffinity core.PodAffinity?; 3 podAntiAffinity core.PodAntiAffinity?"
    ),
    "core.AppArmorProfile": "1 type str!; 2 localhostProfile str?",
    "core.AzureDiskVolumeSource": (
        "1 diskName str!; 2 diskURI str!; 3 cachingMode str?; 4 fsType str?; 5 readOnly bool?; 6 kind str?"
    ),
    "core.AzureFileVolumeSource": "1 secretName str!; 2 shareName str!; 3 readOnly bool",
    "core.CSIVolumeSource": (
        "1 driver str!; 2 readOnly bool?; 3 fsType str?; 4 volumeAttributes map:str; "
        "5 nodePublishSecretRef core.LocalObjectReference?"
    ),
    "core.Capabilities": "1 add str*; 2 drop str*",
    "core.CephFSVolumeSource": (
        "1 monitors str*; 2 path str; 3 user str; 4 secretFile str; 5 secretRef core.LocalObjectReference?; "
        "6 readOnly bool"
    ),
    "core.CinderVolumeSource": (
        "1 volumeID str!; 2 fsType str; 3 readOnly bool; 4 secretRef core.LocalObjectReference?"
    ),
    "core.ClientIPConfig": "1 timeoutSeconds int?",
    "core.ClusterTrustBundleProjection": (
        "1 name str?; 2 signerName str?; 3 labelSelector meta.LabelSelector?; 5 optional bool?; 4 path str!"
    ),
    "core.ConfigMap": "1 metadata meta.ObjectMeta; 4 immutable bool?; 2 data map:str; 3 binaryData map:bytes",
    "core.ConfigMapEnvSource": "1 localObjectReference core.LocalObjectReference^; 2 optional bool?",
    "core.ConfigMapKeySelector": "1 localObjectReference core.LocalObjectReference^; 2 key str!; 3 optional bool?",
    "core.ConfigMapProjection": (
        "1 localObjectReference core.LocalObjectReference^; 2 items core.KeyToPath*; 4 optional bool?"
    ),
    "core.ConfigMapVolumeSource": (
        "1 localObjectReference core.LocalObjectReference^; 2 items core.KeyToPath*; 3 defaultMode int?; "
        "4 optional bool?"
    ),
    "core.Container": (
        "1 name str!; 2 image str; 3 command str*; 4 args str*; 5 workingDir str; "
        "6 ports core.ContainerPort*; 19 envFrom core.EnvFromSource*; 7 env core.EnvVar*; "
        "8 resources core.ResourceRequirements; 23 resizePolicy core.ContainerResizePolicy*; "
        "24 restartPolicy str?; 9 volumeMounts core.VolumeMount*; 21 volumeDevices core.VolumeDevice*; "
        "10 livenessProbe core.Probe?; 11 readinessProbe core.Probe?; 22 startupProbe core.Probe?; "
        "12 lifecycle core.Lifecycle?; 13 terminationMessagePath str; 20 terminationMessagePolicy str; "
        "14 imagePullPolicy str; 15 securityContext core.SecurityContext?; 16 stdin bool; 17 stdinOnce bool; "
        "18 tty bool"
    ),
    "core.ContainerPort": "1 name str; 2 hostPort int; 3 containerPort int!; 4 protocol str; 5 hostIP str",
    "core.ContainerResizePolicy": "1 resourceName str!; 2 restartPolicy str!",
    "core.DownwardAPIProjection": "1 items core.DownwardAPIVolumeFile*",
    "core.DownwardAPIVolumeFile": (
        "1 path str!; 2 fieldRef core.ObjectFieldSelector?; 3 resourceFieldRef core.ResourceFieldSelector?; 4 mode int?"
    ),
    "core.DownwardAPIVolumeSource": "1 items core.DownwardAPIVolumeFile*; 2 defaultMode int?",
    "core.EmptyDirVolumeSource": "1 medium str; 2 sizeLimit Quantity?",
    "core.EnvFromSource": "1 prefix str; 2 configMapRef core.ConfigMapEnvSource?; 3 secretRef core.SecretEnvSource?",
    "core.EnvVar": "1 name str!; 2 value str; 3 valueFrom core.EnvVarSource?",
    "core.EnvVarSource": (
        "1 fieldRef core.ObjectFieldSelector?; 2 resourceFieldRef core.ResourceFieldSelector?; "
        "3 configMapKeyRef core.ConfigMapKeySelector?; 4 secretKeyRef core.SecretKeySelector?"
    ),
    "core.EphemeralContainer": "1 ephemeralContainerCommon core.EphemeralContainerCommon^; 2 targetContainerName str",
    "core.EphemeralContainerCommon": (
        "1 name str!; 2 image str; 3 command str*; 4 args str*; 5 workingDir str; "
        "6 ports core.ContainerPort*; 19 envFrom core.EnvFromSource*; 7 env core.EnvVar*; "
        "8 resources core.ResourceRequirements; 23 resizePolicy core.ContainerResizePolicy*; "
        "24 restartPolicy str?; 9 volumeMounts core.VolumeMount*; 21 volumeDevices core.VolumeDevice*; "
        "10 livenessProbe core.Probe?; 11 readinessProbe core.Probe?; 22 startupProbe core.Probe?; "
        "12 lifecycle core.Lifecycle?; 13 terminationMessagePath str; 20 terminationMessagePolicy str; "
        "14 imagePullPolicy str; 15 securityContext core.SecurityContext?; 16 stdin bool; 17 stdinOnce bool; "
        "18 tty bool"
    ),
    "core.EphemeralVolumeSource": "1 volumeClaimTemplate core.PersistentVolumeClaimTemplate?",
    "core.ExecAction": "1 command str*",
    "core.FCVolumeSource": "1 targetWWNs str*; 2 lun int?; 3 fsType str; 4 readOnly bool; 5 wwids str*",
    "core.FlexVolumeSource": (
        "1 driver str!; 2 fsType str; 3 secretRef core.LocalObjectReference?; 4 readOnly bool; 5 options map:str"
    ),
    "core.FlockerVolumeSource": "1 datasetName str; 2 datasetUUID str",
    "core.GCEPersistentDiskVolumeSource": "1 pdName str!; 2 fsType str; 3 partition int; 4 readOnly bool",
    "core.GRPCAction": "1 port int!; 2 service str?",
    "core.GitRepoVolumeSource": "1 repository str!; 2 revision str; 3 directory str",
    "core.GlusterfsVolumeSource": "1 endpoints str!; 2 path str!; 3 readOnly bool",
    "core.HTTPGetAction": "1 path str; 2 port IntOrString; 3 host str; 4 scheme str; 5 httpHeaders core.HTTPHeader*",
    "core.HTTPHeader": "1 name str!; 2 value str!",
    "core.HostAlias": "1 ip str!; 2 hostnames str*",
    "core.HostPathVolumeSource": "1 path str!; 2 type str?",
    "core.ISCSIVolumeSource": (
        "1 targetPortal str!; 2 iqn str!; 3 lun int!; 4 iscsiInterface str; 5 fsType str; 6 readOnly bool; "
        "7 portals str*; 8 chapAuthDiscovery bool; 11 chapAuthSession bool; "
        "10 secretRef core.LocalObjectReference?; 12 initiatorName str?"
    ),
    "core.ImageVolumeSource": "1 reference str; 2 pullPolicy str",
    "core.KeyToPath": "1 key str!; 2 path str!; 3 mode int?",
    "core.Lifecycle": "1 postStart core.LifecycleHandler?; 2 preStop core.LifecycleHandler?",
    "core.LifecycleHandler": (
        "1 exec core.ExecAction?; 2 httpGet core.HTTPGetAction?; 3 tcpSocket core.TCPSocketAction?; "
        "4 sleep core.SleepAction?"
    ),
    "core.LoadBalancerIngress": "1 ip str; 2 hostname str; 3 ipMode str?; 4 ports core.PortStatus*",
    "core.LoadBalancerStatus": "1 ingress core.LoadBalancerIngress*",
    "core.LocalObjectReference": "1 name str",
    "core.NFSVolumeSource": "1 server str!; 2 path str!; 3 readOnly bool",
    "core.Namespace": "1 metadata meta.ObjectMeta; 2 spec core.NamespaceSpec; 3 status core.NamespaceStatus",
    "core.NamespaceCondition": "1 type str!; 2 status str!; 4 lastTransitionTime Time; 5 reason str; 6 message str",
    "core.NamespaceSpec": "1 finalizers str*",
    "core.NamespaceStatus": "1 phase str; 2 conditions core.NamespaceCondition*",
    "core.NodeAffinity": (
        "1 requiredDuringSchedulingIgnoredDuringExecution core.NodeSelector?; "
        "2 preferredDuringSchedulingIgnoredDuringExecution core.PreferredSchedulingTerm*"
    ),
    "core.NodeSelector": "1 nodeSelectorTerms core.NodeSelectorTerm*",
    "core.NodeSelectorRequirement": "1 key str!; 2 operator str!; 3 values str*",
    "core.NodeSelectorTerm": (
        "1 matchExpressions core.NodeSelectorRequirement*; 2 matchFields core.NodeSelectorRequirement*"
    ),
    "core.ObjectFieldSelector": "1 apiVersion str; 2 fieldPath str!",
    "core.ObjectReference": (
        "1 kind str; 2 namespace str; 3 name str; 4 uid str; 5 apiVersion str; 6 resourceVersion str; 7 fieldPath str"
    ),
    "core.PersistentVolumeClaimSpec": (
        "1 accessModes str*; 4 selector meta.LabelSelector?; 2 resources core.VolumeResourceRequirements; "
        "3 volumeName str; 5 storageClassName str?; 6 volumeMode str?; "
        "7 dataSource core.TypedLocalObjectReference?; 8 dataSourceRef core.TypedObjectReference?; "
        "9 volumeAttributesClassName str?"
    ),
    "core.PersistentVolumeClaimTemplate": "1 metadata meta.ObjectMeta; 2 spec core.PersistentVolumeClaimSpec",
    "core.PersistentVolumeClaimVolumeSource": "1 claimName str!; 2 readOnly bool",
    "core.PhotonPersistentDiskVolumeSource": "1 pdID str!; 2 fsType str",
    "core.PodAffinity": (
        "1 requiredDuringSchedulingIgnoredDuringExecution core.PodAffinityTerm*; "
        "2 preferredDuringSchedulingIgnoredDuringExecution core.WeightedPodAffinityTerm*"
    ),
    "core.PodAffinityTerm": (
        "1 labelSelector meta.LabelSelector?; 2 namespaces str*; 3 topologyKey str!; "
        "4 namespaceSelector meta.LabelSelector?; 5 matchLabelKeys str*; 6 mismatchLabelKeys str*"
    ),
    "core.PodAntiAffinity": (
        "1 requiredDuringSchedulingIgnoredDuringExecution core.PodAffinityTerm*; "
        "2 preferredDuringSchedulingIgnoredDuringExecution core.WeightedPodAffinityTerm*"
    ),
    "core.PodDNSConfig": "1 nameservers str*; 2 searches str*; 3 options core.PodDNSConfigOption*",
    "core.PodDNSConfigOption": "1 name str; 2 value str?",
    "core.PodOS": "1 name str!",
    "core.PodReadinessGate": "1 conditionType str!",
    "core.PodResourceClaim": "1 name str!; 3 resourceClaimName str?; 4 resourceClaimTemplateName str?",
    "core.PodSchedulingGate": "1 name str!",
    "core.PodSecurityContext": (
        "1 seLinuxOptions core.SELinuxOptions?; 8 windowsOptions core.WindowsSecurityContextOptions?; "
        "2 runAsUser int?; 6 runAsGroup int?; 3 runAsNonRoot bool?; 4 supplementalGroups int*; "
        "12 supplementalGroupsPolicy str?; 5 fsGroup int?; 7 sysctls core.Sysctl*; "
        "9 fsGroupChangePolicy str?; 10 seccompProfile core.SeccompProfile?; "
        "11 appArmorProfile core.AppArmorProfile?; 13 seLinuxChangePolicy str?"
    ),
    "core.PodSpec": (
        "1 volumes core.Volume*; 20 initContainers core.Container*; 2 containers core.Container*; "
        "34 ephemeralContainers core.EphemeralContainer*; 3 restartPolicy str; "
        "4 terminationGracePeriodSeconds int?; 5 activeDeadlineSeconds int?; 6 dnsPolicy str; "
        "7 nodeSelector map:str; 8 serviceAccountName str; 9 serviceAccount str; "
        "21 automountServiceAccountToken bool?; 10 nodeName str; 11 hostNetwork bool; 12 hostPID bool; "
        "13 hostIPC bool; 27 shareProcessNamespace bool?; 14 securityContext core.PodSecurityContext?; "
        "15 imagePullSecrets core.LocalObjectReference*; 16 hostname str; 17 subdomain str; "
        "18 affinity core.Affinity?; 19 schedulerName str; 22 tolerations core.Toleration*; "
        "23 hostAliases core.HostAlias*; 24 priorityClassName str; 25 priority int?; "
        "26 dnsConfig core.PodDNSConfig?; 28 readinessGates core.PodReadinessGate*; 29 runtimeClassName str?; "
        "30 enableServiceLinks bool?; 31 preemptionPolicy str?; 32 overhead map:Quantity; "
        "33 topologySpreadConstraints core.TopologySpreadConstraint*; 35 setHostnameAsFQDN bool?; "
        "36 os core.PodOS?; 37 hostUsers bool?; 38 schedulingGates core.PodSchedulingGate*; "
        "39 resourceClaims core.PodResourceClaim*; 40 resources core.ResourceRequirements?"
    ),
    "core.PodTemplateSpec": "1 metadata meta.ObjectMeta; 2 spec core.PodSpec",
    "core.PortStatus": "1 port int!; 2 protocol str!; 3 error str?",
    "core.PortworxVolumeSource": "1 volumeID str!; 2 fsType str; 3 readOnly bool",
    "core.PreferredSchedulingTerm": "1 weight int!; 2 preference core.NodeSelectorTerm",
    "core.Probe": (
        "1 handler core.ProbeHandler^; 2 initialDelaySeconds int; 3 timeoutSeconds int; 4 periodSeconds int; "
        "5 successThreshold int; 6 failureThreshold int; 7 terminationGracePeriodSeconds int?"
    ),
    "core.ProbeHandler": (
        "1 exec core.ExecAction?; 2 httpGet core.HTTPGetAction?; 3 tcpSocket core.TCPSocketAction?; "
        "4 grpc core.GRPCAction?"
    ),
    "core.ProjectedVolumeSource": "1 sources core.VolumeProjection*; 2 defaultMode int?",
    "core.QuobyteVolumeSource": (
        "1 registry str!; 2 volume str!; 3 readOnly bool; 4 user str; 5 group str; 6 tenant str"
    ),
    "core.RBDVolumeSource": (
        "1 monitors str*; 2 image str!; 3 fsType str; 4 pool str; 5 user str; 6 keyring str; "
        "7 secretRef core.LocalObjectReference?; 8 readOnly bool"
    ),
    "core.ResourceClaim": "1 name str!; 2 request str",
    "core.ResourceFieldSelector": "1 containerName str; 2 resource str!; 3 divisor Quantity",
    "core.ResourceQuota": (
        "1 metadata meta.ObjectMeta; 2 spec core.ResourceQuotaSpec; 3 status core.ResourceQuotaStatus"
    ),
    "core.ResourceQuotaSpec": "1 hard map:Quantity; 2 scopes str*; 3 scopeSelector core.ScopeSelector?",
    "core.ResourceQuotaStatus": "1 hard map:Quantity; 2 used map:Quantity",
    "core.ResourceRequirements": "1 limits map:Quantity; 2 requests map:Quantity; 3 claims core.ResourceClaim*",
    "core.SELinuxOptions": "1 user str; 2 role str; 3 type str; 4 level str",
    "core.ScaleIOVolumeSource": (
        "1 gateway str!; 2 system str!; 3 secretRef core.LocalObjectReference?; 4 sslEnabled bool; "
        "5 protectionDomain str; 6 storagePool str; 7 storageMode str; 8 volumeName str; 9 fsType str; "
        "10 readOnly bool"
    ),
    "core.ScopeSelector": "1 matchExpressions core.ScopedResourceSelectorRequirement*",
    "core.ScopedResourceSelectorRequirement": "1 scopeName str!; 2 operator str!; 3 values str*",
    "core.SeccompProfile": "1 type str!; 2 localhostProfile str?",
    "core.Secret": (
        "1 metadata meta.ObjectMeta; 5 immutable bool?; 2 data map:bytes; 4 stringData map:str; 3 type str"
    ),
    "core.SecretEnvSource": "1 localObjectReference core.LocalObjectReference^; 2 optional bool?",
    "core.SecretKeySelector": "1 localObjectReference core.LocalObjectReference^; 2 key str!; 3 optional bool?",
    "core.SecretProjection": (
        "1 localObjectReference core.LocalObjectReference^; 2 items core.KeyToPath*; 4 optional bool?"
    ),
    "core.SecretVolumeSource": "1 secretName str; 2 items core.KeyToPath*; 3 defaultMode int?; 4 optional bool?",
    "core.SecurityContext": (
        "1 capabilities core.Capabilities?; 2 privileged bool?; 3 seLinuxOptions core.SELinuxOptions?; "
        "10 windowsOptions core.WindowsSecurityContextOptions?; 4 runAsUser int?; 8 runAsGroup int?; "
        "5 runAsNonRoot bool?; 6 readOnlyRootFilesystem bool?; 7 allowPrivilegeEscalation bool?; "
        "9 procMount str?; 11 seccompProfile core.SeccompProfile?; 12 appArmorProfile core.AppArmorProfile?"
    ),
    "core.Service": "1 metadata meta.ObjectMeta; 2 spec core.ServiceSpec; 3 status core.ServiceStatus",
    "core.ServiceAccount": (
        "1 metadata meta.ObjectMeta; 2 secrets core.ObjectReference*; "
        "3 imagePullSecrets core.LocalObjectReference*; 4 automountServiceAccountToken bool?"
    ),
    "core.ServiceAccountTokenProjection": "1 audience str; 2 expirationSeconds int?; 3 path str!",
    "core.ServicePort": (
        "1 name str; 2 protocol str; 6 appProtocol str?; 3 port int!; 4 targetPort IntOrString; 5 nodePort int"
    ),
    "core.ServiceSpec": (
        "1 ports core.ServicePort*; 2 selector map:str; 3 clusterIP str; 18 clusterIPs str*; 4 type str; "
        "5 externalIPs str*; 7 sessionAffinity str; 8 loadBalancerIP str; 9 loadBalancerSourceRanges str*; "
        "10 externalName str; 11 externalTrafficPolicy str; 12 healthCheckNodePort int; "
        "13 publishNotReadyAddresses bool; 14 sessionAffinityConfig core.SessionAffinityConfig?; "
        "19 ipFamilies str*; 17 ipFamilyPolicy str?; 20 allocateLoadBalancerNodePorts bool?; "
        "21 loadBalancerClass str?; 22 internalTrafficPolicy str?; 23 trafficDistribution str?"
    ),
    "core.ServiceStatus": "1 loadBalancer core.LoadBalancerStatus; 2 conditions meta.Condition*",
    "core.SessionAffinityConfig": "1 clientIP core.ClientIPConfig?",
    "core.SleepAction": "1 seconds int!",
    "core.StorageOSVolumeSource": (
        "1 volumeName str; 2 volumeNamespace str; 3 fsType str; 4 readOnly bool; 5 secretRef core.LocalObjectReference?"
    ),
    "core.Sysctl": "1 name str!; 2 value str!",
    "core.TCPSocketAction": "1 port IntOrString; 2 host str",
    "core.Toleration": "1 key str; 2 operator str; 3 value str; 4 effect str; 5 tolerationSeconds int?",
    "core.TopologySpreadConstraint": (
        "1 maxSkew int!; 2 topologyKey str!; 3 whenUnsatisfiable str!; 4 labelSelector meta.LabelSelector?; "
        "5 minDomains int?; 6 nodeAffinityPolicy str?; 7 nodeTaintsPolicy str?; 8 matchLabelKeys str*"
    ),
    "core.TypedLocalObjectReference": "1 apiGroup str?; 2 kind str!; 3 name str!",
    "core.TypedObjectReference": "1 apiGroup str?; 2 kind str!; 3 name str!; 4 namespace str?",
    "core.Volume": "1 name str!; 2 volumeSource core.VolumeSource^",
    "core.VolumeDevice": "1 name str!; 2 devicePath str!",
    "core.VolumeMount": (
        "1 name str!; 2 readOnly bool; 7 recursiveReadOnly str?; 3 mountPath str!; 4 subPath str; "
        "5 mountPropagation str?; 6 subPathExpr str"
    ),
    "core.VolumeProjection": (
        "1 secret core.SecretProjection?; 2 downwardAPI core.DownwardAPIProjection?; "
        "3 configMap core.ConfigMapProjection?; 4 serviceAccountToken core.ServiceAccountTokenProjection?; "
        "5 clusterTrustBundle core.ClusterTrustBundleProjection?"
    ),
    "core.VolumeResourceRequirements": "1 limits map:Quantity; 2 requests map:Quantity",
    "core.VolumeSource": (
        "1 hostPath core.HostPathVolumeSource?; 2 emptyDir core.EmptyDirVolumeSource?; "
        "3 gcePersistentDisk core.GCEPersistentDiskVolumeSource?; "
        "4 awsElasticBlockStore core.AWSElasticBlockStoreVolumeSource?; 5 gitRepo core.GitRepoVolumeSource?; "
        "6 secret core.SecretVolumeSource?; 7 nfs core.NFSVolumeSource?; 8 iscsi core.ISCSIVolumeSource?; "
        "9 glusterfs core.GlusterfsVolumeSource?; "
        "10 persistentVolumeClaim core.PersistentVolumeClaimVolumeSource?; 11 rbd core.RBDVolumeSource?; "
        "12 flexVolume core.FlexVolumeSource?; 13 cinder core.CinderVolumeSource?; "
        "14 cephfs core.CephFSVolumeSource?; 15 flocker core.FlockerVolumeSource?; "
        "16 downwardAPI core.DownwardAPIVolumeSource?; 17 fc core.FCVolumeSource?; "
        "18 azureFile core.AzureFileVolumeSource?; 19 configMap core.ConfigMapVolumeSource?; "
        "20 vsphereVolume core.VsphereVirtualDiskVolumeSource?; 21 quobyte core.QuobyteVolumeSource?; "
        "22 azureDisk core.AzureDiskVolumeSource?; "
        "23 photonPersistentDisk core.PhotonPersistentDiskVolumeSource?; "
        "26 projected core.ProjectedVolumeSource?; 24 portworxVolume core.PortworxVolumeSource?; "
        "25 scaleIO core.ScaleIOVolumeSource?; 27 storageos core.StorageOSVolumeSource?; "
        "28 csi core.CSIVolumeSource?; 29 ephemeral core.EphemeralVolumeSource?; "
        "30 image core.ImageVolumeSource?"
    ),
    "core.VsphereVirtualDiskVolumeSource": (
        "1 volumePath str!; 2 fsType str; 3 storagePolicyName str; 4 storagePolicyID str"
    ),
    "core.WeightedPodAffinityTerm": "1 weight int!; 2 podAffinityTerm core.PodAffinityTerm",
    "core.WindowsSecurityContextOptions": (
        "1 gmsaCredentialSpecName str?; 2 gmsaCredentialSpec str?; 3 runAsUserName str?; 4 hostProcess bool?"
    ),
    "meta.Condition": (
        "1 type str!; 2 status str!; 3 observedGeneration int; 4 lastTransitionTime Time; 5 reason str!; 6 message str!"
    ),
    "meta.LabelSelector": "1 matchLabels map:str; 2 matchExpressions meta.LabelSelectorRequirement*",
    "meta.LabelSelectorRequirement": "1 key str!; 2 operator str!; 3 values str*",
    "meta.ManagedFieldsEntry": (
        "1 manager str; 2 operation str; 3 apiVersion str; 4 time Time?; 6 fieldsType str; "
        "7 fieldsV1 FieldsV1?; 8 subresource str"
    ),
    "meta.ObjectMeta": (
        "1 name str; 2 generateName str; 3 namespace str; 4 selfLink str; 5 uid str; 6 resourceVersion str; "
        "7 generation int; 8 creationTimestamp Time; 9 deletionTimestamp Time?; "
        "10 deletionGracePeriodSeconds int?; 11 labels map:str; 12 annotations map:str; "
        "13 ownerReferences meta.OwnerReference*; 14 finalizers str*; "
        "17 managedFields meta.ManagedFieldsEntry*"
    ),
    "meta.OwnerReference": (
        "5 apiVersion str!; 1 kind str!; 3 name str!; 4 uid str!; 6 controller bool?; 7 blockOwnerDeletion bool?"
    ),
    "networking.HTTPIngressPath": "1 path str; 3 pathType str?; 2 backend networking.IngressBackend",
    "networking.HTTPIngressRuleValue": "1 paths networking.HTTPIngressPath*",
    "networking.Ingress": (
        "1 metadata meta.ObjectMeta; 2 spec networking.IngressSpec; 3 status networking.IngressStatus"
    ),
    "networking.IngressBackend": (
        "4 service networking.IngressServiceBackend?; 3 resource core.TypedLocalObjectReference?"
    ),
    "networking.IngressLoadBalancerIngress": "1 ip str; 2 hostname str; 4 ports networking.IngressPortStatus*",
    "networking.IngressLoadBalancerStatus": "1 ingress networking.IngressLoadBalancerIngress*",
    "networking.IngressPortStatus": "1 port int!; 2 protocol str!; 3 error str?",
    "networking.IngressRule": "1 host str; 2 ingressRuleValue networking.IngressRuleValue^",
    "networking.IngressRuleValue": "1 http networking.HTTPIngressRuleValue?",
    "networking.IngressServiceBackend": "1 name str!; 2 port networking.ServiceBackendPort",
    "networking.IngressSpec": (
        "4 ingressClassName str?; 1 defaultBackend networking.IngressBackend?; 2 tls networking.IngressTLS*; "
        "3 rules networking.IngressRule*"
    ),
    "networking.IngressStatus": "1 loadBalancer networking.IngressLoadBalancerStatus",
    "networking.IngressTLS": "1 hosts str*; 2 secretName str",
    "networking.ServiceBackendPort": "1 name str; 2 number int",
    "policy.PodDisruptionBudget": (
        "1 metadata meta.ObjectMeta; 2 spec policy.PodDisruptionBudgetSpec; 3 status policy.PodDisruptionBudgetStatus"
    ),
    "policy.PodDisruptionBudgetSpec": (
        "1 minAvailable IntOrString?; 2 selector meta.LabelSelector?; 3 maxUnavailable IntOrString?; "
        "4 unhealthyPodEvictionPolicy str?"
    ),
    "policy.PodDisruptionBudgetStatus": (
        "1 observedGeneration int; 2 disruptedPods map:Time; 3 disruptionsAllowed int!; "
        "4 currentHealthy int!; 5 desiredHealthy int!; 6 expectedPods int!; 7 conditions meta.Condition*"
    ),
    "rbac.AggregationRule": "1 clusterRoleSelectors meta.LabelSelector*",
    "rbac.ClusterRole": (
        "1 metadata meta.ObjectMeta; 2 rules rbac.PolicyRule*; 3 aggregationRule rbac.AggregationRule?"
    ),
    "rbac.ClusterRoleBinding": "1 metadata meta.ObjectMeta; 2 subjects rbac.Subject*; 3 roleRef rbac.RoleRef",
    "rbac.PolicyRule": (
        "1 verbs str*; 2 apiGroups str*; 3 resources str*; 4 resourceNames str*; 5 nonResourceURLs str*"
    ),
    "rbac.Role": "1 metadata meta.ObjectMeta; 2 rules rbac.PolicyRule*",
    "rbac.RoleBinding": "1 metadata meta.ObjectMeta; 2 subjects rbac.Subject*; 3 roleRef rbac.RoleRef",
    "rbac.RoleRef": "1 apiGroup str!; 2 kind str!; 3 name str!",
    "rbac.Subject": "1 kind str!; 2 apiGroup str; 3 name str!; 4 namespace str",
    "authorization.SelfSubjectAccessReview": (
        "1 metadata meta.ObjectMeta; 2 spec authorization.SelfSubjectAccessReviewSpec; "
        "3 status authorization.SubjectAccessReviewStatus"
    ),
    "authorization.SelfSubjectAccessReviewSpec": (
        "1 resourceAttributes authorization.ResourceAttributes?; "
        "2 nonResourceAttributes authorization.NonResourceAttributes?"
    ),
    "authorization.ResourceAttributes": (
        "1 namespace str; 2 verb str; 3 group str; 4 version str; 5 resource str; 6 subresource str; 7 name str"
    ),
    "authorization.NonResourceAttributes": "1 path str; 2 verb str",
    "authorization.SubjectAccessReviewStatus": "1 allowed bool!; 4 denied bool; 2 reason str; 3 evaluationError str",
    "authorization.SelfSubjectRulesReview": (
        "1 metadata meta.ObjectMeta; 2 spec authorization.SelfSubjectRulesReviewSpec; "
        "3 status authorization.SubjectRulesReviewStatus"
    ),
    "authorization.SelfSubjectRulesReviewSpec": "1 namespace str",
    "authorization.SubjectRulesReviewStatus": (
        "1 resourceRules authorization.ResourceRule*; 2 nonResourceRules authorization.NonResourceRule*; "
        "3 incomplete bool; 4 evaluationError str"
    ),
    "authorization.ResourceRule": "1 verbs str*; 2 apiGroups str*; 3 resources str*; 4 resourceNames str*",
    "authorization.NonResourceRule": "1 verbs str*; 2 nonResourceURLs str*",
    "authentication.SelfSubjectReview": "1 metadata meta.ObjectMeta; 2 status authentication.SelfSubjectReviewStatus",
    "authentication.SelfSubjectReviewStatus": "1 userInfo authentication.UserInfo",
    "authentication.UserInfo": "1 username str; 2 uid str; 3 groups str*",
    "scheduling.PriorityClass": (
        "1 metadata meta.ObjectMeta; 2 value int!; 3 globalDefault bool; 4 description str; 5 preemptionPolicy str?"
    ),
}

_GROUP_VERSIONS = {
    "core": "v1",
    "apps": "apps/v1",
    "batch": "batch/v1",
    "rbac": "rbac.authorization.k8s.io/v1",
    "policy": "policy/v1",
    "scheduling": "scheduling.k8s.io/v1",
    "networking": "networking.k8s.io/v1",
    "authentication": "authentication.k8s.io/v1",
    "autoscaling": "autoscaling/v1",
    "certificates": "certificates.k8s.io/v1",
    "authorization": "authorization.k8s.io/v1",
}

_ROOTS = (
    "core.Namespace",
    "core.ConfigMap",
    "core.Secret",
    "core.ServiceAccount",
    "core.Service",
    "core.ResourceQuota",
    "apps.Deployment",
    "batch.Job",
    "batch.CronJob",
    "rbac.Role",
    "rbac.ClusterRole",
    "rbac.RoleBinding",
    "rbac.ClusterRoleBinding",
    "policy.PodDisruptionBudget",
    "scheduling.PriorityClass",
    "networking.Ingress",
    "autoscaling.HorizontalPodAutoscaler",
    "certificates.CertificateSigningRequest",
    "authentication.TokenRequest",
    "authentication.SelfSubjectReview",
    "authorization.SelfSubjectAccessReview",
    "authorization.SelfSubjectRulesReview",
)

# (apiVersion, kind) -> message name of the top-level objects we decode.
KINDS: dict[tuple[str, str], str] = {
    (_GROUP_VERSIONS[root.partition(".")[0]], root.partition(".")[2]): root for root in _ROOTS
}


def _parse_field(spec: str) -> Field:
    number, name, type_ = spec.split()
    flags = ""
    while type_[-1] in "*?!^":
        flags, type_ = type_[-1] + flags, type_[:-1]
    return Field(
        number=int(number),
        name=name,
        type=type_,
        repeated="*" in flags,
        pointer="?" in flags,
        required="!" in flags,
        inline="^" in flags,
    )


@cache
def schema(message: str) -> tuple[Field, ...]:
    """The parsed fields of `message`, in Go struct order."""
    try:
        spec = MESSAGES[message]
    except KeyError:
        raise ProtobufDecodeError(f"no schema for message {message}") from None
    return tuple(_parse_field(part) for part in spec.split("; "))


@cache
def _by_number(message: str) -> dict[int, Field]:
    return {field.number: field for field in schema(message)}


# ---------------------------------------------------------------------------------------------------
# Decoding
# ---------------------------------------------------------------------------------------------------


def decode_envelope(body: bytes) -> tuple[str, str, bytes]:
    """Split a `k8s\\0` + runtime.Unknown body into (apiVersion, kind, raw object bytes)."""
    if not body.startswith(MAGIC):
        raise ProtobufDecodeError("missing k8s protobuf magic prefix")
    api_version = kind = encoding = ""
    raw = b""
    for number, wire_type, value in iter_fields(body[len(MAGIC) :]):
        if number == 1:
            api_version, kind = _decode_type_meta(_expect_bytes(wire_type, value))
        elif number == 2:
            raw = _expect_bytes(wire_type, value)
        elif number == 3:
            encoding = _text(_expect_bytes(wire_type, value))
    if encoding:
        raise ProtobufDecodeError(f"unsupported contentEncoding {encoding!r}")
    if not kind:
        raise ProtobufDecodeError("envelope has no kind")
    return api_version, kind, raw


def _decode_type_meta(buf: bytes) -> tuple[str, str]:
    found = {1: "", 2: ""}
    for number, wire_type, value in iter_fields(buf):
        if number in found:
            found[number] = _text(_expect_bytes(wire_type, value))
    return found[1], found[2]


def decode_k8s_protobuf(body: bytes) -> dict[str, Any]:
    """Decode a protobuf request body into the dict kubectl would have sent as JSON."""
    api_version, kind, raw = decode_envelope(body)
    message = KINDS.get((api_version, kind))
    if message is None:
        raise ProtobufDecodeError(f"unsupported kind {kind} in {api_version or 'v1'}")
    return {"apiVersion": api_version, "kind": kind, **decode_message(raw, message)}


def decode_message(buf: bytes, message: str) -> dict[str, Any]:
    """Decode one message by its schema into its JSON form (see the module docstring for the rules)."""
    fields = _by_number(message)
    values: dict[int, Any] = {}
    for number, wire_type, value in iter_fields(buf):
        field = fields.get(number)
        if field is None:
            continue  # unknown to Kubernetes 1.32: skip, as Go's decoder does
        if field.repeated or field.map_value:
            values.setdefault(number, []).extend(_decode_items(field, wire_type, value))
        else:
            values[number] = _decode_value(field.type, wire_type, value)
    out: dict[str, Any] = {}
    for field in schema(message):
        if field.number in values:
            _emit(out, field, values[field.number])
    return out


def _decode_items(field: Field, wire_type: int, value: int | bytes) -> list[Any]:
    """Repeated and map fields; repeated ints may also arrive packed."""
    if field.map_value:
        return [_decode_map_entry(field.map_value, _expect_bytes(wire_type, value))]
    if field.type == "int" and wire_type == _LENGTH:
        return [_signed(v) for v in _unpack_varints(_expect_bytes(wire_type, value))]
    return [_decode_value(field.type, wire_type, value)]


def _unpack_varints(buf: bytes) -> list[int]:
    items, pos = [], 0
    while pos < len(buf):
        item, pos = read_varint(buf, pos)
        items.append(item)
    return items


def _decode_map_entry(value_type: str, buf: bytes) -> tuple[str, Any]:
    key, value = "", None
    for number, wire_type, raw in iter_fields(buf):
        if number == 1:
            key = _text(_expect_bytes(wire_type, raw))
        elif number == 2:
            value = _decode_value(value_type, wire_type, raw)
    if value is None:  # Go's zero value for an entry written without one
        value = "" if value_type in ("str", "bytes", "Quantity") else None
    return key, value


def _decode_value(type_: str, wire_type: int, value: int | bytes) -> Any:
    if type_ == "int":
        return _signed(_expect_int(wire_type, value))
    if type_ == "bool":
        return _expect_int(wire_type, value) != 0
    data = _expect_bytes(wire_type, value)
    if type_ == "str":
        return _text(data)
    if type_ == "bytes":
        return base64.b64encode(data).decode("ascii")
    if type_ in _SPECIALS:
        return _SPECIAL_DECODERS[type_](data)
    return decode_message(data, type_)


def _emit(out: dict[str, Any], field: Field, value: Any) -> None:
    """Store `value` under the field's JSON name unless Go's JSON encoder would leave it out."""
    if field.map_value:
        if value:
            out[field.name] = dict(value)
    elif field.repeated:
        if value:
            out[field.name] = value
    elif field.inline:
        out.update(value)
    elif field.pointer or field.required or not _is_omitted_zero(field.type, value):
        out[field.name] = value


def _is_omitted_zero(type_: str, value: Any) -> bool:
    """True for non-pointer omitempty values Go would not print (see the module docstring)."""
    if type_ in _SCALARS or type_ in ("IntOrString", "Quantity"):
        return value in ("", 0, False)
    return False  # nested structs and null Times are printed


def _decode_time(buf: bytes) -> str | None:
    """metav1.Time writes an empty payload for the zero time, which Go prints as null."""
    if not buf:
        return None
    seconds, _nanos = _ints(buf, 1, 2)
    try:
        moment = datetime.fromtimestamp(seconds, tz=UTC)
    except (OverflowError, OSError, ValueError):
        raise ProtobufDecodeError(f"timestamp out of range: {seconds}") from None
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _decode_int_or_string(buf: bytes) -> int | str:
    kind, int_val = _ints(buf, 1, 2)
    if kind == 1:
        return _strings(buf, 3)[0]
    return int_val


def _decode_quantity(buf: bytes) -> str:
    return _strings(buf, 1)[0]


def _decode_fields_v1(buf: bytes) -> Any:
    """managedFields' fieldsV1 holds raw JSON, which Go prints verbatim."""
    raw = _strings(buf, 1)[0]
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        raise ProtobufDecodeError("fieldsV1 is not JSON") from None


_SPECIAL_DECODERS = {
    "Time": _decode_time,
    "IntOrString": _decode_int_or_string,
    "Quantity": _decode_quantity,
    "FieldsV1": _decode_fields_v1,
}


def _ints(buf: bytes, *numbers: int) -> list[int]:
    found = dict.fromkeys(numbers, 0)
    for number, wire_type, value in iter_fields(buf):
        if number in found:
            found[number] = _signed(_expect_int(wire_type, value))
    return list(found.values())


def _strings(buf: bytes, *numbers: int) -> list[str]:
    found = dict.fromkeys(numbers, "")
    for number, wire_type, value in iter_fields(buf):
        if number in found:
            found[number] = _text(_expect_bytes(wire_type, value))
    return list(found.values())


def _expect_int(wire_type: int, value: int | bytes) -> int:
    if wire_type != _VARINT or not isinstance(value, int):
        raise ProtobufDecodeError(f"expected a varint, got wire type {wire_type}")
    return value


def _expect_bytes(wire_type: int, value: int | bytes) -> bytes:
    if wire_type != _LENGTH or not isinstance(value, bytes):
        raise ProtobufDecodeError(f"expected a length-delimited field, got wire type {wire_type}")
    return value


def _text(data: bytes) -> str:
    """Go's JSON encoder replaces invalid UTF-8 with U+FFFD; so do we."""
    return data.decode("utf-8", errors="replace")
