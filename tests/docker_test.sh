#!/usr/bin/env bash
# docker_test: the container files agree with the programs, without Docker (tests/container_test.sh
# builds and runs them). docker/Dockerfile, docker/entrypoint.sh, docker/compose.yaml and
# docker/k8s/*.yaml are read (YAML with python3-yaml) and every container they describe is run
# through the real entrypoint with stub siam-server / siam-client programs that record their
# command line. Checked:
#   - every --flag given to siam-server / siam-client (Dockerfile, entrypoint, the command lines
#     the compose services and Kubernetes containers end up with) is in that program's --help;
#   - one server port everywhere: listen address, EXPOSE, compose ports, k8s containerPort,
#     probes, Service port and targetPort, the workers' --server address (whose host is the
#     compose service / k8s Service name);
#   - the image name is the same in compose and k8s;
#   - the Indexed Job's completions = parallelism = the --workers it passes, and pod i gets
#     --worker-index i; the compose workers have indices 0..N-1 with --workers N;
#   - the env var names compose and k8s set are ones the entrypoint reads; the k8s pods turn off
#     the Services' variables (enableServiceLinks: false: the Service siam-server would add
#     SIAM_SERVER_* ones), and gRPC probes name their port by number;
#   - the runtime stage's Debian packages provide every shared library the programs link, the
#     build stage installs the build packages of scripts/install-deps.sh, .dockerignore keeps
#     .git and build directories out but not what the Dockerfile copies.
set -uo pipefail
bindir=${SIAM_BIN_DIR:?}
root=$(cd "$(dirname "$0")/.." && pwd)
py=/usr/bin/python3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0 checks=0
check() { # check DESCRIPTION COMMAND...
  checks=$((checks + 1))
  if ! (eval "$2") >"$tmp/check.out" 2>&1; then
    echo "FAIL: $1"; sed 's/^/      /' "$tmp/check.out" | head -n 20; fails=$((fails + 1))
  fi
}
fail() { echo "FAIL: $*"; exit 1; }

"$py" -c 'import yaml' 2>/dev/null ||
  fail "$py cannot import yaml; run scripts/install-deps.sh (installs python3-yaml)"
for f in docker/Dockerfile docker/entrypoint.sh docker/compose.yaml .dockerignore; do
  [ -f "$root/$f" ] || fail "$root/$f missing"
done
ls "$root"/docker/k8s/*.yaml >/dev/null 2>&1 || fail "no $root/docker/k8s/*.yaml"
for prog in siam-server siam-client; do
  [ -x "$bindir/$prog" ] || fail "$bindir/$prog not built"
  "$bindir/$prog" --help >"$tmp/$prog.help" 2>&1 || fail "$prog --help exited non-zero"
  grep -oE '^  --[a-z][a-z0-9-]*' "$tmp/$prog.help" | sed 's/^ *//' | sort -u >"$tmp/$prog.flags"
done
entry=$root/docker/entrypoint.sh

# in_help PROG FLAG...: every FLAG is one of PROG's --help flags (prints the ones that are not)
in_help() {
  local prog=$1 f bad=0; shift
  for f in "$@"; do
    grep -qxF -- "$f" "$tmp/$prog.flags" || { echo "$prog has no $f (not in $prog --help)"; bad=1; }
  done
  return $bad
}

# ---- facts from the YAML files: one directory per container run, plus key=value lines ----
mkdir -p "$tmp/runs"
"$py" - "$root" "$tmp" <<'PYEOF' || fail "cannot read the compose or k8s files (see above)"
import glob, os, sys, yaml

root, tmp = sys.argv[1], sys.argv[2]
facts = open(os.path.join(tmp, "facts"), "w")
nrun = 0

def fact(*words):
    facts.write(" ".join(str(w) for w in words) + "\n")

def run(source, env, args, expect_index=None):
    """one container start: its environment and its arguments to the entrypoint"""
    global nrun
    d = os.path.join(tmp, "runs", "%03d" % nrun)
    nrun += 1
    os.makedirs(d)
    with open(os.path.join(d, "env"), "w") as f:
        f.write("".join("%s=%s\0" % (k, v) for k, v in env.items()))
    with open(os.path.join(d, "args"), "w") as f:
        f.write("".join("%s\0" % a for a in args))
    with open(os.path.join(d, "source"), "w") as f:
        f.write(source)
    if expect_index is not None:
        with open(os.path.join(d, "index"), "w") as f:
            f.write(str(expect_index))

def port_of(addr):
    return str(addr).rsplit(":", 1)[-1]

def host_of(addr):
    return str(addr).rsplit(":", 1)[0]

# ---- compose ----
compose = yaml.safe_load(open(os.path.join(root, "docker", "compose.yaml")))
for name, svc in compose["services"].items():
    src = "compose:" + name
    env = svc.get("environment") or {}
    if isinstance(env, list):
        env = dict(e.split("=", 1) for e in env)
    env = {k: str(v) for k, v in env.items()}
    if svc.get("entrypoint"):
        fact("bad", src, "overrides the image's entrypoint")
    cmd = svc.get("command") or ["server"]
    if isinstance(cmd, str):
        cmd = cmd.split()
    fact("image", src, svc.get("image", "-"))
    for k in env:
        fact("envkey", src, k)
    role = cmd[0]
    fact("role", src, role)
    if role == "server":
        fact("port", src + " SIAM_LISTEN", port_of(env.get("SIAM_LISTEN", "0.0.0.0:50051")))
        if "SIAM_MIN_WORKERS" in env:
            fact("minworkers", "compose", env["SIAM_MIN_WORKERS"])
        fact("servername", "compose", name)
        for p in svc.get("ports") or []:
            if isinstance(p, dict):
                fact("port", src + " ports target", p.get("target"))
            else:
                fact("port", src + " ports container side", str(p).split("/")[0].rsplit(":", 1)[-1])
        run(src, env, cmd)
    elif role == "worker":
        addr = env.get("SIAM_SERVER", "siam-server:50051")
        fact("port", src + " SIAM_SERVER", port_of(addr))
        fact("serverhost", "compose", src, host_of(addr))
        fact("composeworker", env.get("SIAM_WORKER_INDEX", "-"), env.get("SIAM_WORKERS", "-"))
        run(src, env, cmd, env.get("SIAM_WORKER_INDEX"))
    else:
        fact("bad", src, "command %r is neither server nor worker" % cmd)

# ---- kubernetes ----
for path in sorted(glob.glob(os.path.join(root, "docker", "k8s", "*.yaml"))):
    base = os.path.basename(path)
    for doc in yaml.safe_load_all(open(path)):
        if not doc:
            continue
        kind, name = doc["kind"], doc["metadata"]["name"]
        src = "k8s:%s/%s/%s" % (base, kind, name)
        if kind == "Service":
            fact("servername", "k8s", name)
            for p in doc["spec"]["ports"]:
                fact("port", src + " port", p["port"])
                fact("port", src + " targetPort", p.get("targetPort", p["port"]))
            continue
        if kind not in ("Deployment", "Job", "StatefulSet", "Pod"):
            continue
        spec = doc["spec"]
        pod = spec["template"]["spec"] if "template" in spec else spec
        fact("links", src, "off" if pod.get("enableServiceLinks") is False else "on")
        for c in pod["containers"]:
            csrc = src + "/" + c["name"]
            fact("image", csrc, c.get("image", "-"))
            if c.get("command"):
                fact("bad", csrc, "overrides the image's entrypoint (command:)")
            args = [str(a) for a in (c.get("args") or ["server"])]
            env = {}
            for e in c.get("env") or []:
                fact("envkey", csrc, e["name"])
                if "value" in e:
                    env[e["name"]] = str(e["value"])
            for p in c.get("ports") or []:
                fact("port", csrc + " containerPort", p["containerPort"])
            for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
                pr = c.get(probe) or {}
                for how in ("grpc", "tcpSocket"):
                    if how in pr:
                        fact("port", "%s %s.%s.port" % (csrc, probe, how), pr[how]["port"])
                if "grpc" in pr and not isinstance(pr["grpc"].get("port"), int):
                    fact("badprobe", csrc, "%s.grpc.port %r: Kubernetes' gRPC probes take a port "
                         "number, not a name" % (probe, pr["grpc"].get("port")))
            role = args[0]
            if role == "server":
                fact("port", csrc + " SIAM_LISTEN", port_of(env.get("SIAM_LISTEN", "0.0.0.0:50051")))
                if "SIAM_MIN_WORKERS" in env:
                    fact("minworkers", "k8s", env["SIAM_MIN_WORKERS"])
                run(csrc, env, args)
            elif role == "worker":
                addr = env.get("SIAM_SERVER", "siam-server:50051")
                fact("port", csrc + " SIAM_SERVER", port_of(addr))
                fact("serverhost", "k8s", csrc, host_of(addr))
                if kind == "Job":
                    fact("job", csrc, spec.get("completionMode", "NonIndexed"),
                         spec.get("completions", 1), spec.get("parallelism", 1),
                         env.get("SIAM_WORKERS", "-"))
                    for i in range(int(spec.get("completions", 1))):
                        run(csrc + " index %d" % i, dict(env, JOB_COMPLETION_INDEX=str(i)), args, i)
                else:
                    run(csrc, env, args, env.get("SIAM_WORKER_INDEX"))
            else:
                fact("bad", csrc, "args %r start with neither server nor worker" % args)
PYEOF
facts=$tmp/facts
# field N of the facts lines of kind K
fact_field() { awk -v k="$1" -v n="$2" '$1 == k { print $n }' "$facts"; }

check "compose and k8s use the image's entrypoint with role server or worker" "! grep '^bad ' '$facts'"

# ---- flags: Dockerfile ----
# every siam-server / siam-client command in the Dockerfile (RUN lines and comments alike)
grep -oE 'siam-(server|client)( +[^&;|\\]*)?' "$root/docker/Dockerfile" >"$tmp/dockerfile.cmds"
check "Dockerfile runs siam-server and siam-client (--version in the runtime stage)" \
  "grep -q '^siam-server --version' '$tmp/dockerfile.cmds' && grep -q '^siam-client --version' '$tmp/dockerfile.cmds'"
while read -r prog rest; do
  # shellcheck disable=SC2086
  flags=$(grep -oE -- '(^| )--[a-z][a-z0-9-]*' <<<" $rest" | tr -d ' ')
  [ -z "$flags" ] && continue
  check "Dockerfile: $prog $(echo $flags) in $prog --help" "in_help $prog $(echo $flags)"
done <"$tmp/dockerfile.cmds"

# ---- flags: entrypoint, statically (code of the server) and worker) branches, and its header) ----
awk '
  /^  server\)/ { role = "siam-server" } /^  worker\)/ { role = "siam-client" } /^    ;;/ { role = "" }
  /^# server:/ { doc = "siam-server" } /^# worker:/ { doc = "siam-client" } /^set / { doc = "" }
  {
    line = $0; who = ""
    if (doc != "" && line ~ /^#/) who = doc
    else if (role != "" && line !~ /^ *#/) who = role
    if (who == "") next
    while (match(line, /(^|[ "(])--[a-z][a-z0-9-]*/)) {
      f = substr(line, RSTART, RLENGTH); sub(/^[ "(]/, "", f); print who, f
      line = substr(line, RSTART + RLENGTH)
    }
  }' "$entry" | sort -u >"$tmp/entry.flags"
check "entrypoint: has server and worker branches with flags" \
  "grep -q '^siam-server --listen$' '$tmp/entry.flags' && grep -q '^siam-client --server$' '$tmp/entry.flags'"
while read -r prog f; do
  check "entrypoint: $prog $f in $prog --help" "in_help $prog $f"
done <"$tmp/entry.flags"
check "entrypoint: bash -n" "bash -n '$entry'"

# ---- every container through the real entrypoint, with stub programs recording their argv ----
mkdir -p "$tmp/stub"
for prog in siam-server siam-client; do
  printf '#!/usr/bin/env bash\nprintf "%%s\\0" "$(basename "$0")" "$@" >"$SIAM_STUB_OUT"\n' >"$tmp/stub/$prog"
  chmod +x "$tmp/stub/$prog"
done
# entry_run OUT ENVFILE ARG...: runs the entrypoint in a clean environment plus ENVFILE's
# NUL-separated VAR=VALUE entries, never waiting for a server
entry_run() {
  local out=$1 envfile=$2; shift 2
  local -a envs=()
  [ -s "$envfile" ] && mapfile -d '' envs <"$envfile"
  env -i PATH="$tmp/stub:/usr/bin:/bin" SIAM_STUB_OUT="$out" "${envs[@]}" SIAM_WAIT_SECONDS=0 \
    bash "$entry" "$@"
}
# value of FLAG in the NUL-separated argv file (the last one wins, as in the programs)
argv_value() { tr '\0' '\n' <"$1" | awk -v f="$2" 'prev == f { v = $0 } { prev = $0 } END { print v }'; }

nruns=0
for d in "$tmp"/runs/*/; do
  [ -f "$d/source" ] || continue
  nruns=$((nruns + 1))
  src=$(cat "$d/source")
  mapfile -d '' args <"$d/args"
  role=${args[0]}
  want=siam-server; [ "$role" = worker ] && want=siam-client
  entry_run "$d/argv" "$d/env" "${args[@]}" >"$d/out" 2>&1; rc=$?
  check "$src: entrypoint $role exits 0 (stub $want)" "[ $rc -eq 0 ] || { cat '$d/out'; false; }"
  [ -s "$d/argv" ] || continue
  mapfile -d '' argv <"$d/argv"
  check "$src: entrypoint $role execs $want" "[ '${argv[0]}' = $want ]"
  flags=$(printf '%s\n' "${argv[@]:1}" | grep -E '^--[a-z]' | sort -u | tr '\n' ' ')
  check "$src: $want ${flags% }: all in $want --help" "in_help $want $flags"
  if [ "$role" = server ]; then
    listen=$(argv_value "$d/argv" --listen)
    echo "port $src:--listen ${listen##*:}" >>"$facts"
    check "$src: server listens on all interfaces ($listen)" "[[ '$listen' == 0.0.0.0:* || '$listen' == '[::]:'* ]]"
  else
    srv=$(argv_value "$d/argv" --server)
    echo "port $src:--server ${srv##*:}" >>"$facts"
    if [ -f "$d/index" ]; then
      idx=$(cat "$d/index")
      check "$src: --worker-index $idx" "[ '$(argv_value "$d/argv" --worker-index)' = '$idx' ]"
    fi
    echo "workersflag $src $(argv_value "$d/argv" --workers)" >>"$facts"
  fi
done
check "compose and k8s describe server and worker containers" "[ $nruns -ge 4 ]"

# ---- the entrypoint refuses a worker without index or count, and passes other commands through ----
: >"$tmp/empty.env"
entry_run "$tmp/argv" "$tmp/empty.env" worker >"$tmp/out" 2>&1; rc=$?
check "entrypoint worker without SIAM_WORKER_INDEX exits 2 naming it" \
  "[ $rc -eq 2 ] && grep -q SIAM_WORKER_INDEX '$tmp/out'"
printf 'SIAM_WORKER_INDEX=2\0SIAM_WORKERS=2\0' >"$tmp/bad.env"
entry_run "$tmp/argv" "$tmp/bad.env" worker >"$tmp/out" 2>&1; rc=$?
check "entrypoint worker index 2 of 2 refused" "[ $rc -eq 2 ] && grep -q 'must be below' '$tmp/out'"
entry_run "$tmp/argv" "$tmp/empty.env" siam-client --version >"$tmp/out" 2>&1; rc=$?
check "entrypoint runs another command as is" \
  "[ $rc -eq 0 ] && [ \"\$(tr '\0' ' ' <'$tmp/argv')\" = 'siam-client --version ' ]"

# ---- one port everywhere ----
{
  grep -E '^EXPOSE ' "$root/docker/Dockerfile" | awk '{ print "port Dockerfile:EXPOSE", $2 }'
  sed -nE 's/.*SIAM_LISTEN:-[^}]*:([0-9]+)\}.*/port entrypoint:default-listen \1/p' "$entry"
  sed -nE 's/.*SIAM_SERVER:-[^}]*:([0-9]+)\}.*/port entrypoint:default-server \1/p' "$entry"
} >>"$facts"
check "Dockerfile EXPOSEs the port and the entrypoint has default listen and server ports" \
  "grep -q '^port Dockerfile:EXPOSE ' '$facts' && grep -q '^port entrypoint:default-listen ' '$facts' && grep -q '^port entrypoint:default-server ' '$facts'"
awk '$1 == "port" { print $NF }' "$facts" | sort | uniq -c >"$tmp/ports"
check "one server port everywhere ($(awk '{ printf "%s ", $2 }' "$tmp/ports")): $(awk '$1 == "port"' "$facts" | wc -l) places" \
  "[ \$(wc -l <'$tmp/ports') -eq 1 ] || { awk '\$1 == \"port\" { print \$2, \$3, \$NF }' '$facts'; false; }"

# ---- the workers reach the server by its compose service / k8s Service name ----
for where in compose k8s; do
  name=$(awk -v w=$where '$1 == "servername" && $2 == w { print $3 }' "$facts")
  check "$where: a server service/Service" "[ -n '$name' ]"
  while read -r src host; do
    check "$src: --server host $host is the $where server name $name" "[ '$host' = '$name' ]"
  done < <(awk -v w=$where '$1 == "serverhost" && $2 == w { print $3, $4 }' "$facts")
done

# ---- one image name ----
fact_field image 3 | sort -u >"$tmp/images"
check "one image name in compose and k8s ($(tr '\n' ' ' <"$tmp/images"))" \
  "[ \$(wc -l <'$tmp/images') -eq 1 ] && ! grep -qx -- - '$tmp/images' && grep -q '^image compose:' '$facts' && grep -q '^image k8s:' '$facts'"

# ---- worker counts ----
njobs=0
while read -r _ src mode completions parallelism workers; do
  njobs=$((njobs + 1))
  check "$src: completionMode Indexed" "[ '$mode' = Indexed ]"
  check "$src: completions ($completions) = parallelism ($parallelism) = SIAM_WORKERS ($workers)" \
    "[ '$completions' = '$parallelism' ] && [ '$parallelism' = '$workers' ]"
  check "$src: every pod passes --workers $workers" \
    "! awk -v s='$src' '\$1 == \"workersflag\" && index(\$2, s) == 1 && \$NF != \"$workers\"' '$facts' | grep -q ."
done < <(grep '^job ' "$facts")
check "k8s: the workers are an Indexed Job" "[ $njobs -ge 1 ]"
k8s_workers=$(awk '$1 == "job" { print $6; exit }' "$facts")

fact_field composeworker 2 | sort -n >"$tmp/cw.idx"
fact_field composeworker 3 | sort -u >"$tmp/cw.n"
n=$(wc -l <"$tmp/cw.idx")
check "compose: $n worker services, all SIAM_WORKERS = $n" "[ $n -ge 1 ] && [ \"\$(cat '$tmp/cw.n')\" = '$n' ]"
check "compose: worker indices are 0..$((n - 1)), each once" "[ \"\$(tr '\n' ' ' <'$tmp/cw.idx')\" = '$(seq -s ' ' 0 $((n - 1))) ' ]"
check "compose: every worker passes --workers $n" \
  "! awk '\$1 == \"workersflag\" && \$2 ~ /^compose:/ && \$NF != \"$n\"' '$facts' | grep -q ."
for where in compose k8s; do
  total=$n; [ $where = k8s ] && total=${k8s_workers:-0}
  while read -r k; do
    check "$where: server SIAM_MIN_WORKERS $k is 1..$total (the workers there are)" "[ '$k' -ge 1 ] && [ '$k' -le '$total' ]"
  done < <(awk -v w=$where '$1 == "minworkers" && $2 == w { print $3 }' "$facts")
done

# ---- env var names: what compose and k8s set is what the entrypoint reads ----
grep -v '^ *#' "$entry" | grep -oE '\b(SIAM_[A-Z_]+|JOB_COMPLETION_INDEX)\b' | sort -u >"$tmp/entry.vars"
check "entrypoint reads JOB_COMPLETION_INDEX, SIAM_WORKER_INDEX and SIAM_WORKERS" \
  "grep -qx JOB_COMPLETION_INDEX '$tmp/entry.vars' && grep -qx SIAM_WORKER_INDEX '$tmp/entry.vars' && grep -qx SIAM_WORKERS '$tmp/entry.vars'"
while read -r _ src var; do
  check "$src sets $var, which the entrypoint reads" "grep -qxF '$var' '$tmp/entry.vars'"
done < <(grep '^envkey ' "$facts" | sort -u -k2)
# Kubernetes sets <SERVICE>_SERVICE_HOST, <SERVICE>_SERVICE_PORT[_NAME], <SERVICE>_PORT[_...]
# in every pod of a Service's namespace unless the pod has enableServiceLinks: false; for the
# Service siam-server these are SIAM_SERVER_*, inside the entrypoint's own SIAM_* settings
check "k8s: gRPC probes name their port by number" "! grep '^badprobe ' '$facts'"
check "k8s: every pod has enableServiceLinks: false (no SIAM_SERVER_* variables from the Service siam-server)" \
  "grep -q '^links ' '$facts' && ! grep '^links .* on\$' '$facts'"
check "entrypoint header documents every SIAM_ variable it reads" \
  "for v in \$(grep '^SIAM_' '$tmp/entry.vars'); do grep -qE \"^#   \$v \" '$entry' || { echo \"\$v undocumented\"; exit 1; }; done"

# ---- Dockerfile stages: build packages, runtime libraries, .dockerignore ----
# packages of the apt-get install in stage $1 (build|runtime)
stage_packages() {
  awk -v s="$1" '
    /^FROM / { in_stage = (tolower($0) ~ (" as " s "$")) }
    in_stage { print }' "$root/docker/Dockerfile" |
    sed -n '/apt-get install/,/&&/p' | tr ' \\' '\n\n' | grep -E '^[a-z0-9][a-z0-9.+-]+$' |
    grep -vxE 'apt-get|install|echo|dataset-fashion-mnist' | sort -u
}
stage_packages build >"$tmp/build.pkgs"
stage_packages runtime >"$tmp/runtime.pkgs"
sed -n '/^packages=(/,/)/p' "$root/scripts/install-deps.sh" | tr ' ()' '\n\n\n' |
  grep -E '^(build-essential|cmake|pkg-config|lib.*-dev|protobuf-c-compiler)$' | sort -u >"$tmp/deps.build"
check "Dockerfile build stage installs the build packages of install-deps.sh ($(tr '\n' ' ' <"$tmp/deps.build"))" \
  "[ -s '$tmp/deps.build' ] && comm -23 '$tmp/deps.build' '$tmp/build.pkgs' | { ! grep .; }"
check "Dockerfile runtime stage has no -dev package or compiler" \
  "[ -s '$tmp/runtime.pkgs' ] && ! grep -E -- '-dev$|^build-essential$|^cmake$|^gcc' '$tmp/runtime.pkgs'"
check "Dockerfile installs dataset-fashion-mnist (or documents mounting the data)" \
  "grep -q dataset-fashion-mnist '$root/docker/Dockerfile'"
check "Dockerfile runtime stage runs as a non-root user" \
  "awk '/^FROM .* [Aa][Ss] runtime/ { r = 1 } r && /^USER / { u = \$2 } END { exit !(u != \"\" && u !~ /^(0|root)(:|\$)/) }' '$root/docker/Dockerfile'"

if command -v dpkg-query >/dev/null && command -v ldd >/dev/null; then
  # Depends closure of the runtime packages, from this machine's dpkg database (the same
  # Debian release as the image)
  "$py" - "$tmp/runtime.pkgs" >"$tmp/closure" 2>"$tmp/closure.err" <<'PYEOF'
import re, subprocess, sys
todo = open(sys.argv[1]).read().split()
seen = set()
def depends(p):
    r = subprocess.run(["dpkg-query", "-W", "-f=${Depends}, ${Pre-Depends}", p],
                       capture_output=True, text=True)
    if r.returncode != 0:
        print("not installed here: " + p, file=sys.stderr)
        return []
    out = []
    for alt in r.stdout.split(","):
        for choice in alt.split("|"):
            name = re.sub(r"\(.*?\)|:any", "", choice).strip()
            if name:
                out.append(name)  # every alternative: the one apt picks is one of them
    return out
while todo:
    p = todo.pop()
    if p in seen:
        continue
    seen.add(p)
    todo.extend(depends(p))
print("\n".join(sorted(seen)))
PYEOF
  check "runtime packages are installed on this machine (to compute their dependencies)" \
    "! grep -q 'not installed here: \\($(paste -sd'|' "$tmp/runtime.pkgs" | sed 's/|/\\\\|/g')\\)\$' '$tmp/closure.err'"
  for prog in siam-server siam-client; do
    # an ASan/UBSan build links the sanitizer runtimes and what they need (libatomic), which
    # the image, built without them, does not ship: the normal build's run checks the libraries.
    # gcc links libasan.so; clang links its runtime statically (then __asan_init is exported;
    # grep without -q reads all of nm's output: nm killed by SIGPIPE would fail the pipefail)
    if ldd "$bindir/$prog" | grep -q 'lib\(a\|ub\)san\.so' ||
      nm -D "$bindir/$prog" 2>/dev/null | grep ' __asan_init$' >/dev/null; then
      echo "note: $prog is a sanitizer build; runtime library check left to the normal build"
      continue
    fi
    ldd "$bindir/$prog" | awk '$2 == "=>" && $3 ~ /^\// { print $3 }' | sort -u >"$tmp/$prog.libs"
    # every spelling of each path dpkg may know it by (/lib vs /usr/lib, symlink vs target), in
    # one dpkg -S call: "package[:arch]: path" lines
    while read -r lib; do
      real=$(readlink -f "$lib")
      printf '%s\n' "$lib" "$real" "${lib/#\/lib\//\/usr\/lib\/}" "${real/#\/usr\/lib\//\/lib\/}" \
        "${lib/#\/usr\/lib\//\/lib\/}" "${real/#\/lib\//\/usr\/lib\/}"
    done <"$tmp/$prog.libs" | sort -u >"$tmp/$prog.paths"
    mapfile -t paths <"$tmp/$prog.paths"
    dpkg -S "${paths[@]}" 2>/dev/null | sed -nE 's/^([^:,]+)(:[a-z0-9]+)?: (.*)$/\3 \1/p' >"$tmp/$prog.owners"
    missing=""
    while read -r lib; do
      real=$(readlink -f "$lib")
      pkg=$(awk -v a="$lib" -v b="$real" '{ p = $1; sub(/^\/usr/, "", p) }
        { x = a; sub(/^\/usr/, "", x); y = b; sub(/^\/usr/, "", y) }
        p == x || p == y { print $2; exit }' "$tmp/$prog.owners")
      [ -n "$pkg" ] || { missing="$missing no-package-for-$(basename "$lib")"; continue; }
      # libasan etc. only in sanitizer builds; they are not runtime dependencies of the image
      case "$pkg" in libasan* | libubsan*) continue ;; esac
      grep -qxF "$pkg" "$tmp/closure" || missing="$missing $pkg"
    done <"$tmp/$prog.libs"
    missing=$(tr ' ' '\n' <<<"$missing" | sort -u | tr '\n' ' ')
    check "Dockerfile runtime packages ($(tr '\n' ' ' <"$tmp/runtime.pkgs")) provide every library $prog links" \
      "[ -s '$tmp/$prog.libs' ] && { [ -z '${missing// /}' ] || { echo 'packages of its libraries not in their dependencies:$missing'; false; }; }"
  done
else
  echo "note: no dpkg-query/ldd here; runtime library check not run"
fi

di=$root/.dockerignore
check ".dockerignore excludes .git and build directories" \
  "grep -qxE '\\.git/?' '$di' && grep -qxE '/?build\\*?/?' '$di'"
while read -r src; do
  check "Dockerfile COPY $src: exists and is not in .dockerignore" \
    "[ -e '$root/$src' ] && ! grep -qxE '/?$src/?' '$di'"
done < <(awk '/^COPY / && !/--from=/ { for (i = 2; i < NF; i++) print $i }' "$root/docker/Dockerfile" | sed 's:^\./::')

echo "$((checks - fails)) passed, $fails failed"
[ $fails -eq 0 ] || { echo "docker_test: $fails of $checks checks failed"; exit 1; }
echo "docker_test: all $checks checks passed"
