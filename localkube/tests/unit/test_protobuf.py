"""LocalKube's protobuf decoder against bodies captured from the real kubectl 1.32 (see protobuf_fixtures/)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from localkube.apiserver.protobuf import (
    KINDS,
    MAGIC,
    MESSAGES,
    ProtobufDecodeError,
    decode_envelope,
    decode_k8s_protobuf,
    decode_message,
    iter_fields,
    read_varint,
    schema,
)

FIXTURES = Path(__file__).parent / "protobuf_fixtures"
CASES = sorted(path.stem for path in FIXTURES.glob("*.bin"))


# A minimal encoder, so tests can build bodies the capture did not cover.
def varint(value: int) -> bytes:
    value &= (1 << 64) - 1
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    return bytes([*out, value])


def vfield(number: int, value: int) -> bytes:
    return varint(number << 3) + varint(value)


def lfield(number: int, payload: bytes | str) -> bytes:
    data = payload.encode() if isinstance(payload, str) else payload
    return varint(number << 3 | 2) + varint(len(data)) + data


def entry(key: str, value: bytes | str) -> bytes:
    return lfield(1, key) + lfield(2, value)


def envelope(api_version: str, kind: str, raw: bytes, encoding: str = "") -> bytes:
    type_meta = lfield(1, api_version) + lfield(2, kind)
    return MAGIC + lfield(1, type_meta) + lfield(2, raw) + lfield(3, encoding) + lfield(4, "")


# --- captured kubectl bodies --------------------------------------------------------------------------


def test_fixtures_present() -> None:
    assert len(CASES) >= 14
    assert all((FIXTURES / f"{case}.json").exists() for case in CASES)


@pytest.mark.parametrize("case", CASES)
def test_decodes_like_kubectl_dry_run_json(case: str) -> None:
    """The decoded body equals what `kubectl create ... --dry-run=client -o json` prints."""
    expected = json.loads((FIXTURES / f"{case}.json").read_text())
    assert decode_k8s_protobuf((FIXTURES / f"{case}.bin").read_bytes()) == expected


def test_pointer_zero_is_kept_but_plain_zero_is_dropped() -> None:
    obj = decode_k8s_protobuf((FIXTURES / "deployment_zero.bin").read_bytes())
    assert obj["spec"]["replicas"] == 0  # *int32 on the wire: set to zero
    assert obj["status"] == {}  # status.replicas is a plain int32 written as 0: dropped
    assert obj["spec"]["strategy"] == {}
    assert obj["metadata"]["creationTimestamp"] is None


def test_secret_data_is_base64_and_service_target_port_is_int() -> None:
    secret = decode_k8s_protobuf((FIXTURES / "secret.bin").read_bytes())
    assert secret["data"] == {"pw": "eA=="}
    service = decode_k8s_protobuf((FIXTURES / "service_nodeport.bin").read_bytes())
    assert service["spec"]["ports"][0]["targetPort"] == 8080
    assert service["spec"]["ports"][0]["nodePort"] == 30080


def test_envelope() -> None:
    api_version, kind, raw = decode_envelope((FIXTURES / "deployment.bin").read_bytes())
    assert (api_version, kind) == ("apps/v1", "Deployment")
    assert raw


# --- hand-built bodies ---------------------------------------------------------------------------------


def test_time_int_or_string_quantity_and_maps() -> None:
    meta = lfield(1, "x") + lfield(8, vfield(1, 1767323045) + vfield(2, 5))
    container = lfield(1, "c") + lfield(
        8, lfield(1, entry("cpu", lfield(1, "500m"))) + lfield(2, entry("memory", lfield(1, "1Gi")))
    )
    strategy = lfield(1, "RollingUpdate") + lfield(2, lfield(1, vfield(1, 1) + lfield(3, "25%")))
    spec = lfield(3, lfield(2, lfield(2, container))) + lfield(4, strategy)
    obj = decode_k8s_protobuf(envelope("apps/v1", "Deployment", lfield(1, meta) + lfield(2, spec)))
    assert obj["metadata"]["creationTimestamp"] == "2026-01-02T03:04:05Z"
    assert obj["spec"]["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%"}}
    resources = obj["spec"]["template"]["spec"]["containers"][0]["resources"]
    assert resources == {"limits": {"cpu": "500m"}, "requests": {"memory": "1Gi"}}


def test_configmap_binary_data_and_pointer_false() -> None:
    raw = lfield(1, lfield(1, "cm")) + vfield(4, 0) + lfield(3, entry("bin", b"\x00\xff"))
    obj = decode_k8s_protobuf(envelope("v1", "ConfigMap", raw))
    assert obj == {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "cm"},
        "immutable": False,
        "binaryData": {"bin": "AP8="},
    }


def test_inline_volume_source_and_empty_pointer_struct() -> None:
    volume = lfield(1, "scratch") + lfield(2, lfield(2, b""))  # VolumeSource.emptyDir = {}
    assert decode_message(volume, "core.Volume") == {
        "name": "scratch",
        "emptyDir": {},
    }


def test_plain_int_or_string_zero_dropped_and_required_fields_kept() -> None:
    port = lfield(1, "") + lfield(2, "TCP") + vfield(3, 0) + lfield(4, vfield(1, 0) + vfield(2, 0))
    assert decode_message(port, "core.ServicePort") == {"protocol": "TCP", "port": 0}


def test_negative_ints_and_packed_repeated() -> None:
    rule = lfield(1, "FailJob") + lfield(2, lfield(2, "In") + lfield(3, b"".join(varint(v) for v in (1, 42))))
    spec = vfield(3, -1) + lfield(11, lfield(1, rule))  # activeDeadlineSeconds, podFailurePolicy
    decoded = decode_message(spec, "batch.JobSpec")
    assert decoded["activeDeadlineSeconds"] == -1
    assert decoded["podFailurePolicy"]["rules"][0]["onExitCodes"] == {"operator": "In", "values": [1, 42]}


def test_unknown_fields_are_skipped() -> None:
    extra = vfield(99, 7) + lfield(98, "future") + varint(97 << 3 | 1) + bytes(8) + varint(96 << 3 | 5) + bytes(4)
    obj = decode_k8s_protobuf(envelope("v1", "Namespace", lfield(1, lfield(1, "ns") + extra) + extra))
    assert obj == {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ns"}}


def test_wire_reader() -> None:
    assert read_varint(varint(300), 0) == (300, 2)
    fields = list(iter_fields(vfield(1, 5) + lfield(2, "ab") + varint(3 << 3 | 5) + b"\x01\0\0\0"))
    assert fields == [(1, 0, 5), (2, 2, b"ab"), (3, 5, 1)]


# --- errors --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"{}",
        MAGIC + b"\x0a\x05ab",  # truncated length-delimited field
        MAGIC + b"\x08" + b"\xff" * 11,  # over-long varint
        MAGIC + b"\x0b",  # group wire type
        envelope("v1", "Pod", b""),  # not a kind kubectl create sends
        envelope("v1", "Namespace", b"", encoding="gzip"),
        envelope("v1", "Namespace", vfield(1, 3)),  # metadata as a varint
    ],
)
def test_malformed_bodies_raise(body: bytes) -> None:
    with pytest.raises(ProtobufDecodeError):
        decode_k8s_protobuf(body)


@pytest.mark.parametrize("case", CASES)
def test_truncated_fixtures_never_crash(case: str) -> None:
    body = (FIXTURES / f"{case}.bin").read_bytes()
    for cut in range(len(MAGIC), len(body)):
        try:
            decode_k8s_protobuf(body[:cut])
        except ProtobufDecodeError:
            pass


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_only_raise_decode_errors(noise: bytes) -> None:
    for body in (MAGIC + noise, envelope("apps/v1", "Deployment", noise)):
        try:
            decode_k8s_protobuf(body)
        except ProtobufDecodeError:
            pass


# --- schema tables -------------------------------------------------------------------------------------


def test_schema_references_resolve() -> None:
    known = set(MESSAGES) | {"str", "int", "bool", "bytes", "Time", "IntOrString", "Quantity", "FieldsV1"}
    for message in MESSAGES:
        fields = schema(message)
        assert len({f.number for f in fields}) == len(fields), message
        for field in fields:
            assert (field.map_value or field.type) in known, (message, field)


def test_every_kind_decodes_an_empty_object() -> None:
    for (api_version, kind), message in KINDS.items():
        assert message in MESSAGES
        assert decode_k8s_protobuf(envelope(api_version, kind, b"")) == {"apiVersion": api_version, "kind": kind}
