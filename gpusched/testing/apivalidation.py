"""The API server's validation of what the operator sends, for the stand-in (gpusched/testing/apiserver.py).

A real kube-apiserver refuses an object a fake would happily store: a Service named `bert.large`,
a pod whose port name has 16 characters, a Lease whose renewTime lacks microseconds. The stand-in
runs these checks so that the tests fail where a real cluster would. They follow the real code
(k8s.io/apimachinery/pkg/util/validation, pkg/apis/core/validation, pkg/apis/coordination/validation)
as of Kubernetes 1.36, the version the stand-in reports (SERVER_VERSION), with its default feature
gates and the same field paths and messages; they cover the fields our clients write and never
refuse what the real server accepts. Rules that changed since 1.31, which this module once followed:
environment variable names are any printable ASCII but '=' (RelaxedEnvironmentVariableValidation,
GA in 1.34: `1BATCH_SIZE` is fine) and Service names are DNS-1123 labels (RelaxedServiceNameValidation:
`7b-pretrain` is fine, `bert.large` is not). The server also hands resource quantities back in
canonical form, as strings (`cpu: 2` is read back as "2", `1000m` as "1"): see canonical_quantity.

Nothing in the operator imports this module: the operator's own name rules live in crd.py, and the
two are written independently so that one checks the other.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction
from typing import Any

Obj = dict[str, Any]

# ------------------------------------------------------------------------------ field errors


@dataclass(frozen=True)
class FieldError:
    """field.Error: its str() is what the API server writes into the Status message."""

    field: str
    type: str
    """FieldValueInvalid, FieldValueRequired, FieldValueDuplicate, FieldValueNotFound, FieldValueNotSupported."""
    value: Any = None
    detail: str = ""

    def body(self) -> str:
        words = {
            "FieldValueInvalid": "Invalid value",
            "FieldValueRequired": "Required value",
            "FieldValueDuplicate": "Duplicate value",
            "FieldValueNotFound": "Not found",
            "FieldValueNotSupported": "Unsupported value",
        }[self.type]
        if self.type == "FieldValueRequired":
            return f"{words}: {self.detail}" if self.detail else words
        text = f"{words}: {_go_value(self.value)}"
        return f"{text}: {self.detail}" if self.detail else text

    def __str__(self) -> str:
        return f"{self.field}: {self.body()}"

    def cause(self) -> Obj:
        return {"reason": self.type, "message": self.body(), "field": self.field}


def _go_value(value: Any) -> str:
    """How field.Error prints a value: strings quoted, numbers bare."""
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, bool):
        return "true" if value else "false"
    return "null" if value is None else str(value)


def invalid(path: str, value: Any, detail: str) -> FieldError:
    return FieldError(path, "FieldValueInvalid", value, detail)


def required(path: str, detail: str = "") -> FieldError:
    return FieldError(path, "FieldValueRequired", None, detail)


def aggregate(errors: list[FieldError]) -> str:
    """utilerrors.Aggregate: one error as is, several in brackets."""
    texts = [str(e) for e in errors]
    return texts[0] if len(texts) == 1 else "[" + ", ".join(texts) + "]"


# ------------------------------------------------------------------------------ string formats
# k8s.io/apimachinery/pkg/util/validation/validation.go: each returns the messages, [] when valid.

_DNS1123_LABEL = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_SUBDOMAIN = _DNS1123_LABEL + r"(\." + _DNS1123_LABEL + ")*"
_DNS1035_LABEL = "[a-z]([-a-z0-9]*[a-z0-9])?"
_QUALIFIED_NAME = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_LABEL_VALUE = "(" + _QUALIFIED_NAME + ")?"
_ENV_VAR_NAME = "[-._a-zA-Z][-._a-zA-Z0-9]*"


def _regex_error(what: str, fmt: str, *examples: str) -> str:
    shown = ",  or ".join(f"'{e}'" for e in examples)
    return f"{what} (e.g. {shown}, regex used for validation is '{fmt}')"


def _max_len(n: int) -> str:
    return f"must be no more than {n} characters"


def _full(fmt: str, value: str) -> bool:
    return re.fullmatch(fmt, value) is not None


def is_dns1123_label(value: str) -> list[str]:
    errs = [_max_len(63)] if len(value) > 63 else []
    if not _full(_DNS1123_LABEL, value):
        errs.append(
            _regex_error(
                "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and "
                "must start and end with an alphanumeric character",
                _DNS1123_LABEL,
                "my-name",
                "123-abc",
            )
        )
    return errs


def is_dns1123_subdomain(value: str) -> list[str]:
    errs = [_max_len(253)] if len(value) > 253 else []
    if not _full(_DNS1123_SUBDOMAIN, value):
        errs.append(
            _regex_error(
                "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
                "'.', and must start and end with an alphanumeric character",
                _DNS1123_SUBDOMAIN,
                "example.com",
            )
        )
    return errs


def is_dns1035_label(value: str) -> list[str]:
    errs = [_max_len(63)] if len(value) > 63 else []
    if not _full(_DNS1035_LABEL, value):
        errs.append(
            _regex_error(
                "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an "
                "alphabetic character, and end with an alphanumeric character",
                _DNS1035_LABEL,
                "my-name",
                "abc-123",
            )
        )
    return errs


def is_qualified_name(value: str) -> list[str]:
    """Label and annotation keys: an optional DNS subdomain prefix and '/', then a name of <= 63."""
    parts = value.split("/")
    if len(parts) == 1:
        name = parts[0]
        errs: list[str] = []
    elif len(parts) == 2:
        prefix, name = parts
        errs = ["prefix part must be non-empty"] if not prefix else []
        errs += ["prefix part " + m for m in is_dns1123_subdomain(prefix)] if prefix else []
    else:
        return [
            _regex_error(
                "a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start "
                "and end with an alphanumeric character",
                _QUALIFIED_NAME,
                "MyName",
                "my.name",
                "123-abc",
            )
            + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
        ]
    if not name:
        return [*errs, "name part must be non-empty"]
    if len(name) > 63:
        errs.append("name part " + _max_len(63))
    if not _full(_QUALIFIED_NAME, name):
        errs.append(
            "name part "
            + _regex_error(
                "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
                "alphanumeric character",
                _QUALIFIED_NAME,
                "MyName",
                "my.name",
                "123-abc",
            )
        )
    return errs


def is_valid_label_value(value: str) -> list[str]:
    errs = [_max_len(63)] if len(value) > 63 else []
    if not _full(_LABEL_VALUE, value):
        errs.append(
            _regex_error(
                "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', "
                "and must start and end with an alphanumeric character",
                _LABEL_VALUE,
                "MyValue",
                "my_value",
                "12345",
            )
        )
    return errs


def is_valid_port_name(value: str) -> list[str]:
    """An IANA_SVC_NAME: what container port names and named targetPorts must be."""
    errs = [_max_len(15)] if len(value) > 15 else []
    if not re.fullmatch("[-a-z0-9]+", value):
        errs.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    if not re.search("[a-z]", value):
        errs.append("must contain at least one letter (a-z)")
    if "--" in value:
        errs.append("must not contain consecutive hyphens")
    if value and (value[0] == "-" or value[-1] == "-"):
        errs.append("must not begin or end with a hyphen")
    return errs


def is_valid_port_num(port: Any) -> list[str]:
    ok = isinstance(port, int) and not isinstance(port, bool) and 1 <= port <= 65535
    return [] if ok else ["must be between 1 and 65535, inclusive"]


def _chdir_prefix(value: str) -> list[str]:
    if value in (".", ".."):
        return [f"must not be '{value}'"]
    return ["must not start with '..'"] if value.startswith("..") else []


def is_strict_env_var_name(value: str) -> list[str]:
    """IsEnvVarName: the rule up to 1.33 (and with RelaxedEnvironmentVariableValidation off)."""
    errs = []
    if not _full(_ENV_VAR_NAME, value):
        errs.append(
            _regex_error(
                "a valid environment variable name must consist of alphabetic characters, digits, '_', '-', "
                "or '.', and must not start with a digit",
                _ENV_VAR_NAME,
                "my.env-name",
                "MY_ENV.NAME",
                "MyEnvName1",
            )
        )
    return errs + _chdir_prefix(value)


def is_env_var_name(value: str) -> list[str]:
    """IsRelaxedEnvVarName, what a current server applies (RelaxedEnvironmentVariableValidation is GA
    since 1.34): any printable ASCII character except '='."""
    errs = []
    if any(ord(c) > 126 or ord(c) < 32 or c == "=" for c in value):
        errs.append(
            "a valid environment variable name must consist only of printable ASCII characters other than '='"
        )
    return errs + _chdir_prefix(value)


def path_segment_name(value: str) -> list[str]:
    """What every name must be at least (ValidatePathSegmentName): a core/v1 Event's only rule."""
    if value in (".", ".."):
        return [f"may not be '{value}'"]
    return [f"may not contain '{c}'" for c in ("/", "%") if c in value]


# ------------------------------------------------------------------------------ quantities and times

_QUANTITY = re.compile(
    r"^([+-]?(?:\d+\.?\d*|\.\d+))(?:([eE][+-]?\d+)|(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?)$"
)
_SUFFIX = {
    "": Fraction(1), "n": Fraction(1, 10**9), "u": Fraction(1, 10**6), "m": Fraction(1, 1000),
    "k": Fraction(10**3), "M": Fraction(10**6), "G": Fraction(10**9), "T": Fraction(10**12),
    "P": Fraction(10**15), "E": Fraction(10**18), "Ki": Fraction(2**10), "Mi": Fraction(2**20),
    "Gi": Fraction(2**30), "Ti": Fraction(2**40), "Pi": Fraction(2**50), "Ei": Fraction(2**60),
}  # fmt: skip


def parse_quantity(text: Any) -> Fraction | None:
    """resource.Quantity's value, None when it does not parse (the server answers 400 then)."""
    if isinstance(text, int | float) and not isinstance(text, bool):
        return Fraction(str(text))
    if not isinstance(text, str):
        return None
    m = _QUANTITY.match(text.strip())
    if not m:
        return None
    number = Fraction(m.group(1))
    if m.group(2):
        return number * Fraction(10) ** int(m.group(2)[1:])
    return number * _SUFFIX[m.group(3) or ""]


_DECIMAL_SUFFIX = {-9: "n", -6: "u", -3: "m", 0: "", 3: "k", 6: "M", 9: "G", 12: "T", 15: "P", 18: "E"}
_BINARY_SUFFIX = {0: "", 10: "Ki", 20: "Mi", 30: "Gi", 40: "Ti", 50: "Pi", 60: "Ei"}


def canonical_quantity(value: Any) -> str | None:
    """resource.Quantity's String(): how the API server hands a quantity back (None: not one).

    Always a string, in the quantity's own format (binary suffix, decimal suffix or exponent) with
    the largest suffix that keeps an integer mantissa: 2 -> "2", 2.5 -> "2500m", "1000m" -> "1",
    "4096Mi" -> "4Gi", "1536Mi" -> "1536Mi", "1.5k" -> "1500", "12e6" -> "12e6", "512Ki" -> "512Ki",
    "0.5Ki" -> "512" (binary below 1024 is shown in decimal). Values finer than 1n round up to 1n."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    text = value.strip() if isinstance(value, str) else str(value)
    m = _QUANTITY.match(text)
    if not m:
        return None
    amount = parse_quantity(text)
    if amount is None:
        return None
    fmt = "exponent" if m.group(2) else ("binary" if (m.group(3) or "").endswith("i") else "decimal")
    sign = -1 if amount < 0 else 1
    nanos = -((-abs(amount) * 10**9).__floor__())  # ceil: Go rounds a finer value up to 1n
    if nanos == 0:
        return "0"
    amount = Fraction(sign * nanos, 10**9)
    if fmt == "binary" and (-1024 < amount < 1024 or amount.denominator != 1):
        fmt = "decimal"
    if fmt == "binary":
        number, exp = int(amount), 0
        while number % 1024 == 0 and exp < 60:
            number, exp = number // 1024, exp + 10
        return f"{number}{_BINARY_SUFFIX[exp]}"
    number, exp = sign * nanos, -9
    while number % 10 == 0:
        number, exp = number // 10, exp + 1
    while exp % 3:
        number, exp = number * 10, exp - 1
    if fmt == "exponent":
        return f"{number}e{exp}" if exp else str(number)
    suffix = _DECIMAL_SUFFIX.get(exp)
    return f"{number}{suffix}" if suffix is not None else f"{number}e{exp}"


def canonical_resources(obj: Obj) -> Obj:
    """The object as the server stores and returns it: every resource quantity of a Pod (containers,
    init containers, overhead) or a Node (capacity, allocatable) in canonical string form."""
    kind = obj.get("kind")
    maps: list[Any] = []
    if kind == "Pod":
        spec = obj.get("spec") or {}
        for ctr in (spec.get("containers") or []) + (spec.get("initContainers") or []):
            res = ctr.get("resources") if isinstance(ctr, dict) else None
            if isinstance(res, dict):
                maps += [res.get("limits"), res.get("requests")]
        maps.append(spec.get("overhead"))
    elif kind == "Node":
        status = obj.get("status") or {}
        maps += [status.get("capacity"), status.get("allocatable")]
    for values in maps:
        if isinstance(values, dict):
            for name, value in values.items():
                text = canonical_quantity(value)
                if text is not None:
                    values[name] = text
    return obj


_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
_RFC3339_MICRO = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}(Z|[+-]\d{2}:\d{2})$")


def time_error(value: Any, micro: bool) -> str | None:
    """metav1.Time / MicroTime JSON decoding: Go's time.Parse with RFC3339 or RFC3339Micro (exactly
    six fractional digits). None when it parses (null is the zero time)."""
    if value is None:
        return None
    layout = "2006-01-02T15:04:05.000000Z07:00" if micro else "2006-01-02T15:04:05Z07:00"
    pattern = _RFC3339_MICRO if micro else _RFC3339
    if isinstance(value, str) and pattern.match(value):
        try:
            datetime.fromisoformat(value.replace("Z", "+00:00"))
            return None
        except ValueError:
            pass
    return f'parsing time "{value}" as "{layout}": cannot parse "{value}" as "{layout}"'


# ------------------------------------------------------------------------------ object meta


def _errs(path: str, value: Any, messages: list[str]) -> list[FieldError]:
    return [invalid(path, value, m) for m in messages]


def validate_labels(labels: Any, path: str) -> list[FieldError]:
    out: list[FieldError] = []
    for key, value in (labels or {}).items():
        out += _errs(path, key, is_qualified_name(key))
        out += _errs(path, value, is_valid_label_value(str(value)))
    return out


def validate_meta(meta: Obj, name_rule: Any) -> list[FieldError]:
    """ValidateObjectMeta: the name by the kind's rule, labels, annotations, ownerReferences."""
    out: list[FieldError] = []
    name = meta.get("name") or ""
    out += _errs("metadata.name", name, name_rule(name))
    out += validate_labels(meta.get("labels"), "metadata.labels")
    annotations = meta.get("annotations") or {}
    for key in annotations:
        out += _errs("metadata.annotations", key, is_qualified_name(str(key).lower()))
    size = sum(len(k) + len(str(v)) for k, v in annotations.items())
    if size > 256 * 1024:
        out.append(invalid("metadata.annotations", "", f"must have at most {256 * 1024} bytes"))
    out += _validate_owner_references(meta.get("ownerReferences") or [])
    return out


def _validate_owner_references(refs: list[Obj]) -> list[FieldError]:
    """validateOwnerReference for each, and at most one controller."""
    out: list[FieldError] = []
    path = "metadata.ownerReferences"
    for ref in refs:
        version = str(ref.get("apiVersion") or "").rpartition("/")[2]
        checks = (
            ("apiVersion", version, "version must not be empty"),
            ("kind", ref.get("kind"), "kind must not be empty"),
            ("name", ref.get("name"), "name must not be empty"),
            ("uid", ref.get("uid"), "uid must not be empty"),
        )
        out += [invalid(f"{path}.{key}", ref.get(key) or "", msg) for key, value, msg in checks if not value]
    controllers = [str(r.get("name")) for r in refs if r.get("controller")]
    if len(controllers) > 1:
        out.append(
            invalid(
                path,
                refs,
                'Only one reference can have Controller set to true. Found "true" in references for '
                + " and ".join(controllers),
            )
        )
    return out


# ------------------------------------------------------------------------------ kinds


def validate_pod(pod: Obj) -> list[FieldError]:
    spec = pod.get("spec") or {}
    out = validate_meta(pod.get("metadata") or {}, is_dns1123_subdomain)
    volumes = set()
    for i, vol in enumerate(spec.get("volumes") or []):
        path = f"spec.volumes[{i}].name"
        name = vol.get("name") or ""
        if not name:
            out.append(required(path))
        out += _errs(path, name, is_dns1123_label(name)) if name else []
        if name in volumes:
            out.append(FieldError(path, "FieldValueDuplicate", name))
        volumes.add(name)
    containers = spec.get("containers") or []
    if not containers:
        out.append(required("spec.containers"))
    names: set[str] = set()
    for i, ctr in enumerate(containers):
        out += _validate_container(ctr, f"spec.containers[{i}]", names, volumes)
    for field in ("hostname", "subdomain"):
        if spec.get(field):
            out += _errs(f"spec.{field}", spec[field], is_dns1123_label(spec[field]))
    if spec.get("serviceAccountName"):
        account = spec["serviceAccountName"]
        out += _errs("spec.serviceAccountName", account, is_dns1123_subdomain(account))
    if spec.get("schedulerName"):
        out += _errs("spec.schedulerName", spec["schedulerName"], is_dns1123_subdomain(spec["schedulerName"]))
    policy = spec.get("restartPolicy")
    if policy is not None and policy not in ("Always", "OnFailure", "Never"):
        out.append(
            FieldError(
                "spec.restartPolicy",
                "FieldValueNotSupported",
                policy,
                'supported values: "Always", "Never", "OnFailure"',
            )
        )
    for i, tol in enumerate(spec.get("tolerations") or []):
        out += _validate_toleration(tol, f"spec.tolerations[{i}]")
    return out


def _validate_container(ctr: Obj, path: str, names: set[str], volumes: set[str]) -> list[FieldError]:
    out: list[FieldError] = []
    name = ctr.get("name") or ""
    out += _errs(f"{path}.name", name, is_dns1123_label(name)) if name else [required(f"{path}.name")]
    if name in names:
        out.append(FieldError(f"{path}.name", "FieldValueDuplicate", name))
    names.add(name)
    if not ctr.get("image"):
        out.append(required(f"{path}.image"))
    ports: set[str] = set()
    for j, port in enumerate(ctr.get("ports") or []):
        ppath = f"{path}.ports[{j}]"
        pname = port.get("name") or ""
        if pname:
            msgs = is_valid_port_name(pname)
            out += _errs(f"{ppath}.name", pname, msgs)
            if not msgs and pname in ports:
                out.append(FieldError(f"{ppath}.name", "FieldValueDuplicate", pname))
            ports.add(pname)
        if not port.get("containerPort"):
            out.append(required(f"{ppath}.containerPort"))
        else:
            out += _errs(
                f"{ppath}.containerPort", port["containerPort"], is_valid_port_num(port["containerPort"])
            )
    for j, env in enumerate(ctr.get("env") or []):
        ename = env.get("name") or ""
        epath = f"{path}.env[{j}].name"
        out += _errs(epath, ename, is_env_var_name(ename)) if ename else [required(epath)]
    paths: set[str] = set()
    for j, mount in enumerate(ctr.get("volumeMounts") or []):
        mpath = f"{path}.volumeMounts[{j}]"
        if mount.get("name") not in volumes:
            out.append(FieldError(f"{mpath}.name", "FieldValueNotFound", mount.get("name") or ""))
        mount_path = mount.get("mountPath") or ""
        if not mount_path:
            out.append(required(f"{mpath}.mountPath"))
        elif mount_path in paths:
            out.append(invalid(f"{mpath}.mountPath", mount_path, "must be unique"))
        paths.add(mount_path)
    out += _validate_resources(ctr.get("resources") or {}, f"{path}.resources")
    policy = ctr.get("terminationMessagePolicy")
    if policy is not None and policy not in ("File", "FallbackToLogsOnError"):
        out.append(
            FieldError(
                f"{path}.terminationMessagePolicy",
                "FieldValueNotSupported",
                policy,
                'supported values: "File", "FallbackToLogsOnError"',
            )
        )
    pull = ctr.get("imagePullPolicy")
    if pull is not None and pull not in ("Always", "IfNotPresent", "Never"):
        out.append(
            FieldError(
                f"{path}.imagePullPolicy",
                "FieldValueNotSupported",
                pull,
                'supported values: "Always", "IfNotPresent", "Never"',
            )
        )
    return out


def _native(resource: str) -> bool:
    """Resources in the kubernetes.io namespace (cpu, memory, hugepages-*): everything else is an
    extended resource, which cannot be overcommitted and is counted in whole units."""
    if "/" not in resource:
        return True
    prefix = resource.split("/", 1)[0]
    return prefix == "kubernetes.io" or prefix.endswith(".kubernetes.io")


def _overcommit_allowed(resource: str) -> bool:
    return _native(resource) and not resource.startswith("hugepages-")


def _validate_resources(res: Obj, path: str) -> list[FieldError]:
    """ValidateResourceRequirements (the parts that concern extended resources such as GPUs)."""
    out: list[FieldError] = []
    limits, requests = res.get("limits") or {}, res.get("requests") or {}
    for kind, values in (("limits", limits), ("requests", requests)):
        for name, text in values.items():
            qty = parse_quantity(text)
            if qty is None:
                continue  # the decoder's 400, checked before validation (see decode_errors)
            if qty < 0:
                out.append(invalid(f"{path}.{kind}[{name}]", str(text), "must be greater than or equal to 0"))
            if not _native(name) and qty.denominator != 1:
                out.append(invalid(f"{path}.{kind}[{name}]", str(text), "must be an integer"))
    for name, text in requests.items():
        req, lim = parse_quantity(text), parse_quantity(limits.get(name))
        if req is None:
            continue
        if name in limits and lim is not None:
            if req != lim and not _overcommit_allowed(name):
                out.append(
                    invalid(f"{path}.requests", str(text), f"must be equal to {name} limit of {limits[name]}")
                )
            elif req > lim:
                out.append(
                    invalid(
                        f"{path}.requests",
                        str(text),
                        f"must be less than or equal to {name} limit of {limits[name]}",
                    )
                )
        elif name not in limits and not _overcommit_allowed(name):
            out.append(required(f"{path}.limits", "Limit must be set for non overcommitable resources"))
    return out


def _validate_toleration(tol: Obj, path: str) -> list[FieldError]:
    out: list[FieldError] = []
    key, op = tol.get("key") or "", tol.get("operator") or "Equal"
    if key:
        out += _errs(f"{path}.key", key, is_qualified_name(key))
    elif op != "Exists":
        out.append(
            invalid(
                f"{path}.operator",
                op,
                'operator must be Exists when `key` is empty, which means "match all values and all keys"',
            )
        )
    if tol.get("tolerationSeconds") is not None and tol.get("effect") != "NoExecute":
        out.append(
            invalid(
                f"{path}.effect",
                tol.get("effect") or "",
                "effect must be 'NoExecute' when `tolerationSeconds` is set",
            )
        )
    if op == "Exists" and tol.get("value"):
        out.append(
            invalid(f"{path}.operator", tol["value"], "value must be empty when `operator` is 'Exists'")
        )
    elif op not in ("Equal", "Exists"):
        out.append(
            FieldError(
                f"{path}.operator", "FieldValueNotSupported", op, 'supported values: "Equal", "Exists"'
            )
        )
    effect = tol.get("effect")
    if effect and effect not in ("NoSchedule", "PreferNoSchedule", "NoExecute"):
        out.append(
            FieldError(
                f"{path}.effect",
                "FieldValueNotSupported",
                effect,
                'supported values: "NoSchedule", "PreferNoSchedule", "NoExecute"',
            )
        )
    return out


def validate_service(svc: Obj) -> list[FieldError]:
    spec = svc.get("spec") or {}
    # RelaxedServiceNameValidation (on by default in current releases): a DNS-1123 label, so it may
    # start with a digit; before, a DNS-1035 label.
    out = validate_meta(svc.get("metadata") or {}, is_dns1123_label)
    ports = spec.get("ports") or []
    headless = spec.get("clusterIP") == "None"
    if not ports and not headless and spec.get("type") != "ExternalName":
        out.append(required("spec.ports"))
    seen: set[str] = set()
    for i, port in enumerate(ports):
        path = f"spec.ports[{i}]"
        name = port.get("name") or ""
        if not name and len(ports) > 1:
            out.append(required(f"{path}.name"))
        elif name:
            out += _errs(f"{path}.name", name, is_dns1123_label(name))
            if name in seen:
                out.append(FieldError(f"{path}.name", "FieldValueDuplicate", name))
            seen.add(name)
        out += _errs(f"{path}.port", port.get("port"), is_valid_port_num(port.get("port")))
        target = port.get("targetPort")
        if isinstance(target, str):
            out += _errs(f"{path}.targetPort", target, is_valid_port_name(target))
        elif target is not None and target != 0:
            out += _errs(f"{path}.targetPort", target, is_valid_port_num(target))
    out += validate_labels(spec.get("selector"), "spec.selector")
    return out


def validate_core_event(event: Obj, namespace: str) -> list[FieldError]:
    """core/v1 Events: only legacyValidateEvent, and ObjectMeta with no name rule beyond a path
    segment (the strict rules apply to events.k8s.io/v1 only)."""
    out = validate_meta(event.get("metadata") or {}, path_segment_name)
    involved_ns = (event.get("involvedObject") or {}).get("namespace") or ""
    if not event.get("eventTime"):
        if (involved_ns and namespace != involved_ns) or (
            not involved_ns and namespace not in ("", "default")
        ):
            out.append(invalid("involvedObject.namespace", involved_ns, "does not match event.namespace"))
        return out
    if not involved_ns and namespace not in ("default", "kube-system"):
        out.append(invalid("involvedObject.namespace", involved_ns, "does not match event.namespace"))
    controller = event.get("reportingComponent") or ""
    if not controller:
        out.append(required("reportingComponent"))
    out += _errs("reportingComponent", controller, is_qualified_name(controller))
    for field, limit in (("reportingInstance", 128), ("action", 128), ("reason", 128)):
        if not event.get(field):
            out.append(required(field))
        if len(event.get(field) or "") > limit:
            out.append(invalid(field, "", f"can have at most {limit} characters"))
    if len(event.get("message") or "") > 1024:
        out.append(invalid("message", "", "can have at most 1024 characters"))
    return out


def validate_lease(lease: Obj) -> list[FieldError]:
    spec = lease.get("spec") or {}
    out = validate_meta(lease.get("metadata") or {}, is_dns1123_subdomain)
    duration = spec.get("leaseDurationSeconds")
    if duration is not None and duration <= 0:
        out.append(invalid("spec.leaseDurationSeconds", duration, "must be greater than 0"))
    transitions = spec.get("leaseTransitions")
    if transitions is not None and transitions < 0:
        out.append(invalid("spec.leaseTransitions", transitions, "must be greater than or equal to 0"))
    return out


MICRO_TIME_FIELDS: dict[str, tuple[str, ...]] = {
    "Lease": ("spec.acquireTime", "spec.renewTime"),
    "Event": ("eventTime",),
}
TIME_FIELDS: dict[str, tuple[str, ...]] = {
    "Event": ("firstTimestamp", "lastTimestamp"),
}


def _at(obj: Obj, path: str) -> Any:
    cur: Any = obj
    for part in path.split("."):
        cur = cur.get(part) if isinstance(cur, dict) else None
    return cur


def decode_error(kind: str, obj: Obj) -> str | None:
    """What the JSON decoder refuses before validation runs (a 400 BadRequest): timestamps that Go's
    time.Parse does not read and resource quantities that do not parse."""
    for micro, fields in ((True, MICRO_TIME_FIELDS.get(kind, ())), (False, TIME_FIELDS.get(kind, ()))):
        for path in fields:
            problem = time_error(_at(obj, path), micro)
            if problem:
                return problem
    if kind == "Pod":
        for ctr in (obj.get("spec") or {}).get("containers") or []:
            for values in ((ctr.get("resources") or {}).get(k) or {} for k in ("limits", "requests")):
                for text in values.values():
                    if parse_quantity(text) is None:
                        return "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
    return None


def validate(group: str, kind: str, obj: Obj, namespace: str) -> list[FieldError]:
    """The kind's create/update validation; kinds without rules here get ObjectMeta's."""
    if kind == "Pod":
        return validate_pod(obj)
    if kind == "Service":
        return validate_service(obj)
    if kind == "Event" and not group:
        return validate_core_event(obj, namespace)
    if kind == "Lease":
        return validate_lease(obj)
    if kind == "Namespace":
        return validate_meta(obj.get("metadata") or {}, is_dns1123_label)
    return validate_meta(obj.get("metadata") or {}, is_dns1123_subdomain)


def validate_binding(binding: Obj, pod_name: str) -> tuple[int, str] | list[FieldError]:
    """BindingREST.Create and ValidatePodBinding: (400, message) for a name mismatch, else errors."""
    if (binding.get("metadata") or {}).get("name") != pod_name:
        return 400, "name in URL does not match name in Binding object"
    target = binding.get("target") or {}
    out: list[FieldError] = []
    if target.get("kind") not in (None, "", "Node"):
        out.append(
            FieldError(
                "target.kind",
                "FieldValueNotSupported",
                target.get("kind"),
                'supported values: "Node", "<empty>"',
            )
        )
    if not target.get("name"):
        out.append(required("target.name"))
    return out
