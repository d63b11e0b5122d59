"""Which fields exist in the built-in kinds (Kubernetes 1.32), for `fieldValidation=Strict|Warn`.

The real server decodes JSON into Go structs and reports keys that no struct field takes; we describe
those structs in a tiny type DSL instead. Only structure matters for unknown-field detection: scalar
kinds are kept so that decode-time checks (malformed quantities) know where quantities live. `ANY` marks
free-form parts (annotations, `x-kubernetes-preserve-unknown-fields`, parts we deliberately do not
describe), below which nothing is reported.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Scalar:
    """A leaf: strings, numbers, booleans, quantities, or free-form (`any`) values."""

    name: str


@dataclass(frozen=True)
class Obj:
    """A Go struct: a fixed set of JSON field names."""

    fields: Mapping[str, Schema]

    def extend(self, **more: Schema) -> Obj:
        """A struct embedding this one (Go embedding flattens the fields into the JSON object)."""
        return Obj({**self.fields, **more})


@dataclass(frozen=True)
class ListOf:
    item: Schema


@dataclass(frozen=True)
class MapOf:
    value: Schema


Schema = Scalar | Obj | ListOf | MapOf

STR = Scalar("string")
INT = Scalar("integer")
NUM = Scalar("number")
BOOL = Scalar("boolean")
TIME = Scalar("time")
QUANTITY = Scalar("quantity")
INT_OR_STRING = Scalar("int-or-string")
ANY = Scalar("any")


def OBJ(**fields: Schema) -> Obj:
    return Obj(fields)


def LIST(item: Schema) -> ListOf:
    return ListOf(item)


def MAP(value: Schema) -> MapOf:
    return MapOf(value)


STRS = LIST(STR)
STR_MAP = MAP(STR)
RESOURCE_LIST = MAP(QUANTITY)

# --- meta/v1 -------------------------------------------------------------------------------------------

OWNER_REFERENCE = OBJ(apiVersion=STR, kind=STR, name=STR, uid=STR, controller=BOOL, blockOwnerDeletion=BOOL)
MANAGED_FIELDS_ENTRY = OBJ(
    manager=STR, operation=STR, apiVersion=STR, time=TIME, fieldsType=STR, fieldsV1=ANY, subresource=STR
)
OBJECT_META = OBJ(
    name=STR,
    generateName=STR,
    namespace=STR,
    selfLink=STR,
    uid=STR,
    resourceVersion=STR,
    generation=INT,
    creationTimestamp=TIME,
    deletionTimestamp=TIME,
    deletionGracePeriodSeconds=INT,
    labels=STR_MAP,
    annotations=ANY,
    ownerReferences=LIST(OWNER_REFERENCE),
    finalizers=STRS,
    managedFields=LIST(MANAGED_FIELDS_ENTRY),
)
LABEL_SELECTOR = OBJ(
    matchLabels=STR_MAP,
    matchExpressions=LIST(OBJ(key=STR, operator=STR, values=STRS)),
)

# --- core/v1: references and small structs ---------------------------------------------------------------

LOCAL_OBJECT_REFERENCE = OBJ(name=STR)
OBJECT_REFERENCE = OBJ(kind=STR, namespace=STR, name=STR, uid=STR, apiVersion=STR, resourceVersion=STR, fieldPath=STR)
KEY_TO_PATH = OBJ(key=STR, path=STR, mode=INT)
OBJECT_FIELD_SELECTOR = OBJ(apiVersion=STR, fieldPath=STR)
RESOURCE_FIELD_SELECTOR = OBJ(containerName=STR, resource=STR, divisor=QUANTITY)
KEY_SELECTOR = OBJ(name=STR, key=STR, optional=BOOL)
SE_LINUX_OPTIONS = OBJ(user=STR, role=STR, type=STR, level=STR)
WINDOWS_OPTIONS = OBJ(gmsaCredentialSpecName=STR, gmsaCredentialSpec=STR, runAsUserName=STR, hostProcess=BOOL)
SECCOMP_PROFILE = OBJ(type=STR, localhostProfile=STR)
APP_ARMOR_PROFILE = OBJ(type=STR, localhostProfile=STR)

# --- core/v1: containers ------------------------------------------------------------------------------------

CONTAINER_PORT = OBJ(name=STR, hostPort=INT, containerPort=INT, protocol=STR, hostIP=STR)
ENV_VAR = OBJ(
    name=STR,
    value=STR,
    valueFrom=OBJ(
        fieldRef=OBJECT_FIELD_SELECTOR,
        resourceFieldRef=RESOURCE_FIELD_SELECTOR,
        configMapKeyRef=KEY_SELECTOR,
        secretKeyRef=KEY_SELECTOR,
    ),
)
ENV_FROM_SOURCE = OBJ(
    prefix=STR,
    configMapRef=OBJ(name=STR, optional=BOOL),
    secretRef=OBJ(name=STR, optional=BOOL),
)
RESOURCE_REQUIREMENTS = OBJ(
    limits=RESOURCE_LIST,
    requests=RESOURCE_LIST,
    claims=LIST(OBJ(name=STR, request=STR)),
)
CONTAINER_RESIZE_POLICY = OBJ(resourceName=STR, restartPolicy=STR)
VOLUME_MOUNT = OBJ(
    name=STR,
    readOnly=BOOL,
    recursiveReadOnly=STR,
    mountPath=STR,
    subPath=STR,
    mountPropagation=STR,
    subPathExpr=STR,
)
VOLUME_DEVICE = OBJ(name=STR, devicePath=STR)
EXEC_ACTION = OBJ(command=STRS)
HTTP_GET_ACTION = OBJ(
    path=STR,
    port=INT_OR_STRING,
    host=STR,
    scheme=STR,
    httpHeaders=LIST(OBJ(name=STR, value=STR)),
)
TCP_SOCKET_ACTION = OBJ(port=INT_OR_STRING, host=STR)
GRPC_ACTION = OBJ(port=INT, service=STR)
PROBE = OBJ(
    exec=EXEC_ACTION,
    httpGet=HTTP_GET_ACTION,
    tcpSocket=TCP_SOCKET_ACTION,
    grpc=GRPC_ACTION,
    initialDelaySeconds=INT,
    timeoutSeconds=INT,
    periodSeconds=INT,
    successThreshold=INT,
    failureThreshold=INT,
    terminationGracePeriodSeconds=INT,
)
LIFECYCLE_HANDLER = OBJ(
    exec=EXEC_ACTION,
    httpGet=HTTP_GET_ACTION,
    tcpSocket=TCP_SOCKET_ACTION,
    sleep=OBJ(seconds=INT),
)
LIFECYCLE = OBJ(postStart=LIFECYCLE_HANDLER, preStop=LIFECYCLE_HANDLER)
SECURITY_CONTEXT = OBJ(
    capabilities=OBJ(add=STRS, drop=STRS),
    privileged=BOOL,
    seLinuxOptions=SE_LINUX_OPTIONS,
    windowsOptions=WINDOWS_OPTIONS,
    runAsUser=INT,
    runAsGroup=INT,
    runAsNonRoot=BOOL,
    readOnlyRootFilesystem=BOOL,
    allowPrivilegeEscalation=BOOL,
    procMount=STR,
    seccompProfile=SECCOMP_PROFILE,
    appArmorProfile=APP_ARMOR_PROFILE,
)
CONTAINER = OBJ(
    name=STR,
    image=STR,
    command=STRS,
    args=STRS,
    workingDir=STR,
    ports=LIST(CONTAINER_PORT),
    envFrom=LIST(ENV_FROM_SOURCE),
    env=LIST(ENV_VAR),
    resources=RESOURCE_REQUIREMENTS,
    resizePolicy=LIST(CONTAINER_RESIZE_POLICY),
    restartPolicy=STR,
    volumeMounts=LIST(VOLUME_MOUNT),
    volumeDevices=LIST(VOLUME_DEVICE),
    livenessProbe=PROBE,
    readinessProbe=PROBE,
    startupProbe=PROBE,
    lifecycle=LIFECYCLE,
    terminationMessagePath=STR,
    terminationMessagePolicy=STR,
    imagePullPolicy=STR,
    securityContext=SECURITY_CONTEXT,
    stdin=BOOL,
    stdinOnce=BOOL,
    tty=BOOL,
)
EPHEMERAL_CONTAINER = CONTAINER.extend(targetContainerName=STR)

# --- core/v1: volumes -----------------------------------------------------------------------------------------

DOWNWARD_API_VOLUME_FILE = OBJ(
    path=STR, fieldRef=OBJECT_FIELD_SELECTOR, resourceFieldRef=RESOURCE_FIELD_SELECTOR, mode=INT
)
VOLUME_PROJECTION = OBJ(
    secret=OBJ(name=STR, items=LIST(KEY_TO_PATH), optional=BOOL),
    downwardAPI=OBJ(items=LIST(DOWNWARD_API_VOLUME_FILE)),
    configMap=OBJ(name=STR, items=LIST(KEY_TO_PATH), optional=BOOL),
    serviceAccountToken=OBJ(audience=STR, expirationSeconds=INT, path=STR),
    clusterTrustBundle=OBJ(name=STR, signerName=STR, labelSelector=LABEL_SELECTOR, optional=BOOL, path=STR),
)
VOLUME = OBJ(
    name=STR,
    hostPath=OBJ(path=STR, type=STR),
    emptyDir=OBJ(medium=STR, sizeLimit=QUANTITY),
    gcePersistentDisk=ANY,
    awsElasticBlockStore=ANY,
    gitRepo=ANY,
    secret=OBJ(secretName=STR, items=LIST(KEY_TO_PATH), defaultMode=INT, optional=BOOL),
    nfs=ANY,
    iscsi=ANY,
    glusterfs=ANY,
    persistentVolumeClaim=OBJ(claimName=STR, readOnly=BOOL),
    rbd=ANY,
    flexVolume=ANY,
    cinder=ANY,
    cephfs=ANY,
    flocker=ANY,
    downwardAPI=OBJ(items=LIST(DOWNWARD_API_VOLUME_FILE), defaultMode=INT),
    fc=ANY,
    azureFile=ANY,
    configMap=OBJ(name=STR, items=LIST(KEY_TO_PATH), defaultMode=INT, optional=BOOL),
    vsphereVolume=ANY,
    quobyte=ANY,
    azureDisk=ANY,
    photonPersistentDisk=ANY,
    projected=OBJ(sources=LIST(VOLUME_PROJECTION), defaultMode=INT),
    portworxVolume=ANY,
    scaleIO=ANY,
    storageos=ANY,
    csi=ANY,
    ephemeral=ANY,
    image=OBJ(reference=STR, pullPolicy=STR),
)

# --- core/v1: pods -----------------------------------------------------------------------------------------------

POD_SECURITY_CONTEXT = OBJ(
    seLinuxOptions=SE_LINUX_OPTIONS,
    windowsOptions=WINDOWS_OPTIONS,
    runAsUser=INT,
    runAsGroup=INT,
    runAsNonRoot=BOOL,
    supplementalGroups=LIST(INT),
    supplementalGroupsPolicy=STR,
    fsGroup=INT,
    sysctls=LIST(OBJ(name=STR, value=STR)),
    fsGroupChangePolicy=STR,
    seccompProfile=SECCOMP_PROFILE,
    appArmorProfile=APP_ARMOR_PROFILE,
    seLinuxChangePolicy=STR,
)
TOLERATION = OBJ(key=STR, operator=STR, value=STR, effect=STR, tolerationSeconds=INT)
TOPOLOGY_SPREAD_CONSTRAINT = OBJ(
    maxSkew=INT,
    topologyKey=STR,
    whenUnsatisfiable=STR,
    labelSelector=LABEL_SELECTOR,
    minDomains=INT,
    nodeAffinityPolicy=STR,
    nodeTaintsPolicy=STR,
    matchLabelKeys=STRS,
)
AFFINITY = OBJ(nodeAffinity=ANY, podAffinity=ANY, podAntiAffinity=ANY)
POD_SPEC = OBJ(
    volumes=LIST(VOLUME),
    initContainers=LIST(CONTAINER),
    containers=LIST(CONTAINER),
    ephemeralContainers=LIST(EPHEMERAL_CONTAINER),
    restartPolicy=STR,
    terminationGracePeriodSeconds=INT,
    activeDeadlineSeconds=INT,
    dnsPolicy=STR,
    nodeSelector=STR_MAP,
    serviceAccountName=STR,
    serviceAccount=STR,
    automountServiceAccountToken=BOOL,
    nodeName=STR,
    hostNetwork=BOOL,
    hostPID=BOOL,
    hostIPC=BOOL,
    shareProcessNamespace=BOOL,
    securityContext=POD_SECURITY_CONTEXT,
    imagePullSecrets=LIST(LOCAL_OBJECT_REFERENCE),
    hostname=STR,
    subdomain=STR,
    affinity=AFFINITY,
    schedulerName=STR,
    tolerations=LIST(TOLERATION),
    hostAliases=LIST(OBJ(ip=STR, hostnames=STRS)),
    priorityClassName=STR,
    priority=INT,
    dnsConfig=OBJ(nameservers=STRS, searches=STRS, options=LIST(OBJ(name=STR, value=STR))),
    readinessGates=LIST(OBJ(conditionType=STR)),
    runtimeClassName=STR,
    enableServiceLinks=BOOL,
    preemptionPolicy=STR,
    overhead=RESOURCE_LIST,
    topologySpreadConstraints=LIST(TOPOLOGY_SPREAD_CONSTRAINT),
    setHostnameAsFQDN=BOOL,
    os=OBJ(name=STR),
    hostUsers=BOOL,
    schedulingGates=LIST(OBJ(name=STR)),
    resourceClaims=LIST(OBJ(name=STR, resourceClaimName=STR, resourceClaimTemplateName=STR)),
    resources=RESOURCE_REQUIREMENTS,
)
POD_TEMPLATE_SPEC = OBJ(metadata=OBJECT_META, spec=POD_SPEC)

# --- top-level kinds ---------------------------------------------------------------------------------------------


def _kind(**fields: Schema) -> Obj:
    """A top-level object: TypeMeta and ObjectMeta plus the kind's own fields."""
    return OBJ(apiVersion=STR, kind=STR, metadata=OBJECT_META, **fields)


SERVICE_PORT = OBJ(name=STR, protocol=STR, appProtocol=STR, port=INT, targetPort=INT_OR_STRING, nodePort=INT)
SERVICE_SPEC = OBJ(
    ports=LIST(SERVICE_PORT),
    selector=STR_MAP,
    clusterIP=STR,
    clusterIPs=STRS,
    type=STR,
    externalIPs=STRS,
    sessionAffinity=STR,
    loadBalancerIP=STR,
    loadBalancerSourceRanges=STRS,
    externalName=STR,
    externalTrafficPolicy=STR,
    healthCheckNodePort=INT,
    publishNotReadyAddresses=BOOL,
    sessionAffinityConfig=OBJ(clientIP=OBJ(timeoutSeconds=INT)),
    ipFamilies=STRS,
    ipFamilyPolicy=STR,
    allocateLoadBalancerNodePorts=BOOL,
    loadBalancerClass=STR,
    internalTrafficPolicy=STR,
    trafficDistribution=STR,
)
ENDPOINT_ADDRESS = OBJ(ip=STR, hostname=STR, nodeName=STR, targetRef=OBJECT_REFERENCE)
ENDPOINT_SUBSET = OBJ(
    addresses=LIST(ENDPOINT_ADDRESS),
    notReadyAddresses=LIST(ENDPOINT_ADDRESS),
    ports=LIST(OBJ(name=STR, port=INT, protocol=STR, appProtocol=STR)),
)
NODE_SPEC = OBJ(
    podCIDR=STR,
    podCIDRs=STRS,
    providerID=STR,
    unschedulable=BOOL,
    taints=LIST(OBJ(key=STR, value=STR, effect=STR, timeAdded=TIME)),
    configSource=ANY,
    externalID=STR,
)

# apps/v1
DEPLOYMENT_SPEC = OBJ(
    replicas=INT,
    selector=LABEL_SELECTOR,
    template=POD_TEMPLATE_SPEC,
    strategy=OBJ(type=STR, rollingUpdate=OBJ(maxUnavailable=INT_OR_STRING, maxSurge=INT_OR_STRING)),
    minReadySeconds=INT,
    revisionHistoryLimit=INT,
    paused=BOOL,
    progressDeadlineSeconds=INT,
)
REPLICA_SET_SPEC = OBJ(replicas=INT, minReadySeconds=INT, selector=LABEL_SELECTOR, template=POD_TEMPLATE_SPEC)
PVC_TEMPLATE = OBJ(apiVersion=STR, kind=STR, metadata=OBJECT_META, spec=ANY, status=ANY)
STATEFUL_SET_SPEC = OBJ(
    replicas=INT,
    selector=LABEL_SELECTOR,
    template=POD_TEMPLATE_SPEC,
    volumeClaimTemplates=LIST(PVC_TEMPLATE),
    serviceName=STR,
    podManagementPolicy=STR,
    updateStrategy=OBJ(type=STR, rollingUpdate=OBJ(partition=INT, maxUnavailable=INT_OR_STRING)),
    revisionHistoryLimit=INT,
    minReadySeconds=INT,
    persistentVolumeClaimRetentionPolicy=OBJ(whenDeleted=STR, whenScaled=STR),
    ordinals=OBJ(start=INT),
)
DAEMON_SET_SPEC = OBJ(
    selector=LABEL_SELECTOR,
    template=POD_TEMPLATE_SPEC,
    updateStrategy=OBJ(type=STR, rollingUpdate=OBJ(maxUnavailable=INT_OR_STRING, maxSurge=INT_OR_STRING)),
    minReadySeconds=INT,
    revisionHistoryLimit=INT,
)

# batch/v1
JOB_SPEC = OBJ(
    parallelism=INT,
    completions=INT,
    activeDeadlineSeconds=INT,
    podFailurePolicy=OBJ(
        rules=LIST(
            OBJ(
                action=STR,
                onExitCodes=OBJ(containerName=STR, operator=STR, values=LIST(INT)),
                onPodConditions=LIST(OBJ(type=STR, status=STR)),
            )
        )
    ),
    successPolicy=OBJ(rules=LIST(OBJ(succeededIndexes=STR, succeededCount=INT))),
    backoffLimit=INT,
    backoffLimitPerIndex=INT,
    maxFailedIndexes=INT,
    selector=LABEL_SELECTOR,
    manualSelector=BOOL,
    template=POD_TEMPLATE_SPEC,
    ttlSecondsAfterFinished=INT,
    completionMode=STR,
    suspend=BOOL,
    podReplacementPolicy=STR,
    managedBy=STR,
)
CRON_JOB_SPEC = OBJ(
    schedule=STR,
    timeZone=STR,
    startingDeadlineSeconds=INT,
    concurrencyPolicy=STR,
    suspend=BOOL,
    jobTemplate=OBJ(metadata=OBJECT_META, spec=JOB_SPEC),
    successfulJobsHistoryLimit=INT,
    failedJobsHistoryLimit=INT,
)

# rbac.authorization.k8s.io/v1
POLICY_RULE = OBJ(verbs=STRS, apiGroups=STRS, resources=STRS, resourceNames=STRS, nonResourceURLs=STRS)
SUBJECT = OBJ(kind=STR, apiGroup=STR, name=STR, namespace=STR)
ROLE_REF = OBJ(apiGroup=STR, kind=STR, name=STR)

# apiextensions.k8s.io/v1
CRD_SPEC = OBJ(
    group=STR,
    names=OBJ(plural=STR, singular=STR, shortNames=STRS, kind=STR, listKind=STR, categories=STRS),
    scope=STR,
    versions=LIST(
        OBJ(
            name=STR,
            served=BOOL,
            storage=BOOL,
            deprecated=BOOL,
            deprecationWarning=STR,
            schema=OBJ(openAPIV3Schema=ANY),
            subresources=OBJ(
                status=ANY,
                scale=OBJ(specReplicasPath=STR, statusReplicasPath=STR, labelSelectorPath=STR),
            ),
            additionalPrinterColumns=LIST(
                OBJ(name=STR, type=STR, format=STR, description=STR, priority=INT, jsonPath=STR)
            ),
            selectableFields=LIST(OBJ(jsonPath=STR)),
        )
    ),
    conversion=OBJ(
        strategy=STR,
        webhook=OBJ(
            clientConfig=OBJ(
                url=STR,
                service=OBJ(namespace=STR, name=STR, path=STR, port=INT),
                caBundle=STR,
            ),
            conversionReviewVersions=STRS,
        ),
    ),
    preserveUnknownFields=BOOL,
)

# networking.k8s.io/v1: Ingress and IngressClass
TYPED_LOCAL_OBJECT_REFERENCE = OBJ(apiGroup=STR, kind=STR, name=STR)
INGRESS_BACKEND = OBJ(
    service=OBJ(name=STR, port=OBJ(name=STR, number=INT)),
    resource=TYPED_LOCAL_OBJECT_REFERENCE,
)
INGRESS_SPEC = OBJ(
    ingressClassName=STR,
    defaultBackend=INGRESS_BACKEND,
    tls=LIST(OBJ(hosts=STRS, secretName=STR)),
    rules=LIST(OBJ(host=STR, http=OBJ(paths=LIST(OBJ(path=STR, pathType=STR, backend=INGRESS_BACKEND))))),
)
INGRESS_CLASS_SPEC = OBJ(
    controller=STR,
    parameters=OBJ(apiGroup=STR, kind=STR, name=STR, scope=STR, namespace=STR),
)

# certificates.k8s.io/v1
CSR_SPEC = OBJ(
    request=STR,
    signerName=STR,
    expirationSeconds=INT,
    usages=STRS,
    username=STR,
    uid=STR,
    groups=STRS,
    extra=MAP(STRS),
)

# storage.k8s.io/v1
CSI_DRIVER_SPEC = OBJ(
    attachRequired=BOOL,
    podInfoOnMount=BOOL,
    volumeLifecycleModes=STRS,
    storageCapacity=BOOL,
    fsGroupPolicy=STR,
    tokenRequests=LIST(OBJ(audience=STR, expirationSeconds=INT)),
    requiresRepublish=BOOL,
    seLinuxMount=BOOL,
)
CSI_NODE_SPEC = OBJ(drivers=LIST(OBJ(name=STR, nodeID=STR, topologyKeys=STRS, allocatable=OBJ(count=INT))))

# autoscaling/v2
CROSS_VERSION_OBJECT_REFERENCE = OBJ(kind=STR, name=STR, apiVersion=STR)
METRIC_TARGET = OBJ(type=STR, value=QUANTITY, averageValue=QUANTITY, averageUtilization=INT)
METRIC_IDENTIFIER = OBJ(name=STR, selector=LABEL_SELECTOR)
METRIC_SPEC = OBJ(
    type=STR,
    object=OBJ(describedObject=CROSS_VERSION_OBJECT_REFERENCE, target=METRIC_TARGET, metric=METRIC_IDENTIFIER),
    pods=OBJ(metric=METRIC_IDENTIFIER, target=METRIC_TARGET),
    resource=OBJ(name=STR, target=METRIC_TARGET),
    containerResource=OBJ(name=STR, target=METRIC_TARGET, container=STR),
    external=OBJ(metric=METRIC_IDENTIFIER, target=METRIC_TARGET),
)
HPA_SCALING_RULES = OBJ(
    stabilizationWindowSeconds=INT,
    selectPolicy=STR,
    policies=LIST(OBJ(type=STR, value=INT, periodSeconds=INT)),
)
HPA_SPEC = OBJ(
    scaleTargetRef=CROSS_VERSION_OBJECT_REFERENCE,
    minReplicas=INT,
    maxReplicas=INT,
    metrics=LIST(METRIC_SPEC),
    behavior=OBJ(scaleUp=HPA_SCALING_RULES, scaleDown=HPA_SCALING_RULES),
)

# core/v1: LimitRange and ResourceQuota
LIMIT_RANGE_ITEM = OBJ(
    type=STR,
    max=RESOURCE_LIST,
    min=RESOURCE_LIST,
    default=RESOURCE_LIST,
    defaultRequest=RESOURCE_LIST,
    maxLimitRequestRatio=RESOURCE_LIST,
)
RESOURCE_QUOTA_SPEC = OBJ(
    hard=RESOURCE_LIST,
    scopes=STRS,
    scopeSelector=OBJ(matchExpressions=LIST(OBJ(scopeName=STR, operator=STR, values=STRS))),
)

CORE_EVENT_FIELDS: dict[str, Schema] = {
    name: ANY
    for name in (
        "involvedObject",
        "reason",
        "message",
        "source",
        "firstTimestamp",
        "lastTimestamp",
        "count",
        "type",
        "eventTime",
        "series",
        "action",
        "related",
        "reportingComponent",
        "reportingInstance",
    )
}
EVENTS_V1_FIELDS: dict[str, Schema] = {
    name: ANY
    for name in (
        "eventTime",
        "series",
        "reportingController",
        "reportingInstance",
        "action",
        "reason",
        "regarding",
        "related",
        "note",
        "type",
        "deprecatedSource",
        "deprecatedFirstTimestamp",
        "deprecatedLastTimestamp",
        "deprecatedCount",
    )
}

# (apiVersion, kind) -> schema of the whole object. Kinds absent here get no strict field checking.
BUILTIN_SCHEMAS: dict[tuple[str, str], Obj] = {
    ("v1", "Pod"): _kind(spec=POD_SPEC, status=ANY),
    ("v1", "PodTemplate"): _kind(template=POD_TEMPLATE_SPEC),
    ("v1", "Service"): _kind(spec=SERVICE_SPEC, status=ANY),
    ("v1", "Endpoints"): _kind(subsets=LIST(ENDPOINT_SUBSET)),
    ("v1", "ConfigMap"): _kind(data=STR_MAP, binaryData=STR_MAP, immutable=BOOL),
    ("v1", "Secret"): _kind(data=STR_MAP, stringData=STR_MAP, type=STR, immutable=BOOL),
    ("v1", "Namespace"): _kind(spec=OBJ(finalizers=STRS), status=ANY),
    ("v1", "ServiceAccount"): _kind(
        secrets=LIST(OBJECT_REFERENCE),
        imagePullSecrets=LIST(LOCAL_OBJECT_REFERENCE),
        automountServiceAccountToken=BOOL,
    ),
    ("v1", "Node"): _kind(spec=NODE_SPEC, status=ANY),
    ("v1", "Event"): _kind(**CORE_EVENT_FIELDS),
    ("events.k8s.io/v1", "Event"): _kind(**EVENTS_V1_FIELDS),
    ("apps/v1", "Deployment"): _kind(spec=DEPLOYMENT_SPEC, status=ANY),
    ("apps/v1", "ReplicaSet"): _kind(spec=REPLICA_SET_SPEC, status=ANY),
    ("apps/v1", "StatefulSet"): _kind(spec=STATEFUL_SET_SPEC, status=ANY),
    ("apps/v1", "DaemonSet"): _kind(spec=DAEMON_SET_SPEC, status=ANY),
    ("batch/v1", "Job"): _kind(spec=JOB_SPEC, status=ANY),
    ("batch/v1", "CronJob"): _kind(spec=CRON_JOB_SPEC, status=ANY),
    ("policy/v1", "PodDisruptionBudget"): _kind(
        spec=OBJ(
            minAvailable=INT_OR_STRING,
            selector=LABEL_SELECTOR,
            maxUnavailable=INT_OR_STRING,
            unhealthyPodEvictionPolicy=STR,
        ),
        status=ANY,
    ),
    ("coordination.k8s.io/v1", "Lease"): _kind(
        spec=OBJ(
            holderIdentity=STR,
            leaseDurationSeconds=INT,
            acquireTime=TIME,
            renewTime=TIME,
            leaseTransitions=INT,
            strategy=STR,
            preferredHolder=STR,
        )
    ),
    ("rbac.authorization.k8s.io/v1", "Role"): _kind(rules=LIST(POLICY_RULE)),
    ("rbac.authorization.k8s.io/v1", "ClusterRole"): _kind(
        rules=LIST(POLICY_RULE), aggregationRule=OBJ(clusterRoleSelectors=LIST(LABEL_SELECTOR))
    ),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): _kind(subjects=LIST(SUBJECT), roleRef=ROLE_REF),
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"): _kind(subjects=LIST(SUBJECT), roleRef=ROLE_REF),
    ("networking.k8s.io/v1", "NetworkPolicy"): _kind(
        spec=OBJ(podSelector=LABEL_SELECTOR, ingress=ANY, egress=ANY, policyTypes=STRS), status=ANY
    ),
    ("apiextensions.k8s.io/v1", "CustomResourceDefinition"): _kind(spec=CRD_SPEC, status=ANY),
    ("v1", "LimitRange"): _kind(spec=OBJ(limits=LIST(LIMIT_RANGE_ITEM))),
    ("v1", "ResourceQuota"): _kind(spec=RESOURCE_QUOTA_SPEC, status=OBJ(hard=RESOURCE_LIST, used=RESOURCE_LIST)),
    ("networking.k8s.io/v1", "Ingress"): _kind(spec=INGRESS_SPEC, status=ANY),
    ("networking.k8s.io/v1", "IngressClass"): _kind(spec=INGRESS_CLASS_SPEC),
    ("certificates.k8s.io/v1", "CertificateSigningRequest"): _kind(spec=CSR_SPEC, status=ANY),
    ("storage.k8s.io/v1", "StorageClass"): _kind(
        provisioner=STR,
        parameters=STR_MAP,
        reclaimPolicy=STR,
        mountOptions=STRS,
        allowVolumeExpansion=BOOL,
        volumeBindingMode=STR,
        allowedTopologies=LIST(OBJ(matchLabelExpressions=LIST(OBJ(key=STR, values=STRS)))),
    ),
    ("storage.k8s.io/v1", "CSIDriver"): _kind(spec=CSI_DRIVER_SPEC),
    ("storage.k8s.io/v1", "CSINode"): _kind(spec=CSI_NODE_SPEC),
    ("storage.k8s.io/v1", "CSIStorageCapacity"): _kind(
        nodeTopology=LABEL_SELECTOR, storageClassName=STR, capacity=QUANTITY, maximumVolumeSize=QUANTITY
    ),
    ("scheduling.k8s.io/v1", "PriorityClass"): _kind(
        value=INT, globalDefault=BOOL, description=STR, preemptionPolicy=STR
    ),
    ("autoscaling/v2", "HorizontalPodAutoscaler"): _kind(spec=HPA_SPEC, status=ANY),
}


def schema_for(api_version: str, kind: str) -> Obj | None:
    """The described schema of a built-in kind, or None (then no strict field checking applies)."""
    return BUILTIN_SCHEMAS.get((api_version, kind))
