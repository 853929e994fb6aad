#!/usr/bin/env bash
# container_test: the containers for real. Builds the image from docker/Dockerfile and runs it:
#   1. base images: debian:bookworm and debian:bookworm-slim, made with debootstrap from the
#      host's Debian mirror when the engine has none (there is no Docker Hub here; with real
#      Docker Hub images the Dockerfile is the same), kept in the cache;
#   2. image: `podman build -f docker/Dockerfile` (cached layers make the second run fast); the
#      programs in it are the version of the programs built here;
#   3. run: siam-server and two workers (the image's entrypoint, configured by SIAM_* variables)
#      on their own network train one epoch of the real Fashion-MNIST baked into the image and
#      average weights; from the host, through the published port: Status (rounds >= 1 closed
#      by both workers, the checkpoint current), the health check, and Similarity of test images
#      (same-class pairs closer than different-class ones, and every distance the one the host's
#      siam-client predict computes from the checkpoint the server wrote to a bind mount); the
#      server stops on SIGTERM with exit 0 and a final checkpoint;
#   4. compose: docker/compose.yaml, unchanged, with podman-compose up -d: both workers train and
#      exit 0, Similarity answers through the published port 50051, down -v removes it all;
#   5. kubernetes: `podman kube play` of docker/k8s/server.yaml (the Deployment: its pod runs,
#      answers the call its gRPC probes make, writes its checkpoint into its volume) and of the
#      workers' Indexed Job turned into one Pod per index the way the Job controller makes them
#      (JOB_COMPLETION_INDEX set, the Service's name resolving to the server pod: podman 4.3
#      plays no Job and gives a Service no DNS name); both train against the server and exit 0.
# Every phase prints how long it took: about 5 min cold on 2 busy cores (debootstrap ~55 s, the
# build 100-170 s), 70 s warm (docs/DEVELOPING.md#tests). The engine is podman, as root with
# runc; docker, when podman is missing or lacks what it needs and a docker daemon answers, runs
# phases 1-3, and 4 with `docker compose` when that exists.
#
# Leaves the host as it found it. Podman's storage (graphroot, with the base images and the last
# build's layers) is in the cache, ${SIAM_CONTAINER_CACHE:-~/.cache/siam/containers} (about
# 0.9 GB); its run root, tmp dir, settings and network definitions in /run/siam-test-containers,
# removed at exit (fixed paths: podman's database remembers them). The containers run in network
# and mount namespaces of the test's own (unshare), so their networks, firewall rules, sysctls
# and published ports (compose's fixed 50051) are not the host's, and a tmpfs there hides
# /run/containers/networks, which podman 4.3 uses for netavark's state whatever its settings.
# The build runs in the host's network (apt-get in the Dockerfile) without a netavark network.
# Podman as root also writes /var/lib/containers/cache/blob-info-cache-v1.boltdb whatever its
# settings: removed at exit when this run made it.
#
# Exits 77 (skipped, saying what is missing and how to install it) in the sanitizer build, and
# where no engine can run a container. scripts/install-deps.sh installs what it needs.
set -uo pipefail
bin=${SIAM_BIN_DIR:?SIAM_BIN_DIR is the build directory}
data=${SIAM_DATA_DIR:-/usr/share/datasets/fashion-mnist}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
py=/usr/bin/python3
source "$here/e2e_lib.sh"
install_hint="on Debian 12 run scripts/install-deps.sh (apt-get install podman runc netavark aardvark-dns iptables catatonit debootstrap podman-compose)"
image=siam:0.1.0          # the name docker/compose.yaml and docker/k8s use
state=/run/siam-test-containers

skip() { echo "container_test: skipped: $*"; exit 77; }
fail_now() { echo "FAIL $*"; exit 1; }
checks=0 fails=0
check() { # check DESCRIPTION COMMAND: ok, or FAIL with COMMAND's output
  checks=$((checks + 1))
  if (eval "$2") >"$work/check.out" 2>&1; then
    echo "ok   $1"
  else
    echo "FAIL $1"; sed 's/^/       /' "$work/check.out" | head -n 25; fails=$((fails + 1))
  fi
}
# every phase's containers get 300 s to finish (they take 10-20 s), so that a broken run ends
# well within ctest's timeout
phase_start() { phase_name=$1 phase_t0=$(date +%s.%N) deadline=$((SECONDS + 300)); echo "== $1"; }
phase_end() {
  local dt
  dt=$(awk -v a="$phase_t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
  echo "== $phase_name: $dt s"
  echo "$phase_name $dt" >>"$work/times"
}
# num FILE KEY: a number from the JSON object in FILE
num() { "$py" -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2" 2>/dev/null; }
fge() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a + 0 >= b + 0) }'; }
# show N FILE: the end of FILE, for a failed check's output; fails
show() { tail -n "$1" "$2" 2>/dev/null; return 1; }

# ---------------------------------------------------------------------------------------------
# The containers' phases. With podman they run in network and mount namespaces of their own:
# this script runs itself again under unshare with --in-netns.
# ---------------------------------------------------------------------------------------------

E() { "$engine" "$@"; }
# exit_code NAME [SECONDS]: waits for container NAME to exit (at most SECONDS, else until the
# phase's deadline) and prints its exit code
exit_code() {
  local wait_s=${2:-$((deadline - SECONDS))}
  [ "$wait_s" -ge 1 ] || wait_s=1
  timeout "$wait_s" "$engine" wait "$1" >/dev/null 2>&1
  E inspect --format '{{.State.ExitCode}} {{.State.Status}}' "$1" 2>/dev/null | {
    read -r code status
    [ "$status" = exited ] && echo "$code" || echo "still-$status"
  }
}
# probe ADDR OUT [ARGS...]: Status, health (and Similarity with --pairs) from the host
probe() {
  local addr=$1 out=$2; shift 2
  timeout 120 "$py" "$here/container_probe.py" --server "$addr" --stubs "$work/stubs" \
    --data "$data" --wait 30 "$@" >"$out" 2>"$out.err"
}
# rounds_closed_by_2 LOG: how many averaging rounds both workers went into
rounds_closed_by_2() { grep -c 'averaging: round [0-9]* closed: 2 worker(s)' "$1"; }
# clean_engine: removes what the test made (all of it: the storage is the test's own)
clean_engine() {
  if [ "$engine" = podman ]; then
    E pod rm -af -t 1 >/dev/null 2>&1
    E rm -af -v -t 1 >/dev/null 2>&1
    E network ls --format '{{.Name}}' 2>/dev/null | grep -vx podman | xargs -r "$engine" network rm -f >/dev/null 2>&1
    E volume prune -f >/dev/null 2>&1
  else
    E ps -aq --filter "label=siam-container-test=$run_id" | xargs -r "$engine" rm -f -v >/dev/null 2>&1
    [ -z "${compose_cmd:-}" ] || (cd "$root" && $compose_cmd -p "$project" -f docker/compose.yaml down -v -t 2) >/dev/null 2>&1
    E network rm "$net" >/dev/null 2>&1
  fi
}

phase_run() {
  phase_start run
  local out=$work/out port srv=siam-ct-server
  mkdir -p "$out"
  chown 10001:10001 "$out" 2>/dev/null || chmod 0777 "$out"  # the image's user siam writes there
  E network create "$net" >"$work/net.log" 2>&1 || { cat "$work/net.log"; fail_now "$engine network create $net"; }
  # the address the workers use: the name docker/compose.yaml and the k8s Service give the server
  E run -d --name "$srv" --label "siam-container-test=$run_id" --network "$net" \
    --network-alias siam-server -p 127.0.0.1::50051 -v "$out:/var/lib/siam" \
    -e SIAM_MIN_WORKERS=2 -e SIAM_SYNC_TIMEOUT=60 -e SIAM_CHECKPOINT=/var/lib/siam/global.ckpt \
    -e SIAM_CHECKPOINT_EVERY=1 "$image" server --grace 2 >"$work/run-server.log" 2>&1 ||
    { cat "$work/run-server.log"; fail_now "$engine run $image server"; }
  port=$(E port "$srv" 50051/tcp | head -n 1)
  port=${port##*:}
  check "server container publishes 50051 on 127.0.0.1 (port $port)" "[ -n '$port' ]"
  for i in 0 1; do
    E run -d --name "siam-ct-worker-$i" --label "siam-container-test=$run_id" --network "$net" \
      -v "$out:/var/lib/siam" -e SIAM_SERVER=siam-server:50051 -e "SIAM_WORKER_INDEX=$i" \
      -e SIAM_WORKERS=2 -e SIAM_EPOCHS=1 -e SIAM_BATCH_SIZE=128 -e SIAM_SYNC_EVERY=50 \
      -e SIAM_THREADS=1 -e 'SIAM_CHECKPOINT=/var/lib/siam/worker-{i}.ckpt' \
      -e 'SIAM_METRICS=/var/lib/siam/worker-{i}.csv' "$image" worker --json \
      >"$work/run-worker-$i.log" 2>&1 || { cat "$work/run-worker-$i.log"; fail_now "$engine run $image worker"; }
  done
  for i in 0 1; do
    code=$(exit_code "siam-ct-worker-$i")
    E logs "siam-ct-worker-$i" >"$work/worker-$i.out" 2>"$work/worker-$i.log"
    check "worker $i container exits 0 ($code)" "[ '$code' = 0 ] || show 20 '$work/worker-$i.log'"
    tail -n 1 "$work/worker-$i.out" >"$work/worker-$i.json"
    acc=$(num "$work/worker-$i.json" accuracy)
    echo "     worker $i: accuracy ${acc:-?} on the test pairs after 1 epoch"
    check "worker $i: test accuracy at m/2 >= 0.70 after one epoch (${acc:-none})" "fge '${acc:-0}' 0.70"
    check "worker $i wrote its checkpoint and metrics into the bind mount" \
      "[ -s '$out/worker-$i.ckpt' ] && [ -s '$out/worker-$i.csv' ]"
  done
  E logs "$srv" >"$work/server.out" 2>"$work/server.log"
  n2=$(rounds_closed_by_2 "$work/server.log")
  check "server log: $n2 averaging rounds closed by both workers (>= 1)" "[ '$n2' -ge 1 ]"

  probe "127.0.0.1:$port" "$work/run-probe.json" --pairs 20
  check "Status, health and Similarity from the host through 127.0.0.1:$port" \
    "[ -s '$work/run-probe.json' ] || show 30 '$work/run-probe.json.err'"
  local round ckround joined health
  round=$(num "$work/run-probe.json" round) ckround=$(num "$work/run-probe.json" checkpoint_round)
  joined=$(num "$work/run-probe.json" joined_workers) health=$(num "$work/run-probe.json" health)
  check "Status: round $round >= 1, 2 workers joined ($joined), checkpoint of the current round ($ckround)" \
    "[ '${round:-0}' -ge 1 ] && [ '$joined' = 2 ] && [ '$ckround' = '$round' ]"
  check "Status: workers siam-worker-0 and siam-worker-1 (the entrypoint's ids)" \
    "grep -q '\"workers\": \\[\"siam-worker-0\", \"siam-worker-1\"\\]' '$work/run-probe.json'"
  check "Status: version of the programs built here ($host_version)" \
    "[ \"\$(num '$work/run-probe.json' version)\" = '$host_version' ]"
  check "health check (the call of Kubernetes' gRPC probe): SERVING ($health)" "[ '$health' = SERVING ]"
  local ms md agree
  ms=$(num "$work/run-probe.json" mean_same) md=$(num "$work/run-probe.json" mean_diff)
  agree=$(num "$work/run-probe.json" agree)
  ms=$(printf '%.4f' "$ms") md=$(printf '%.4f' "$md")
  echo "     Similarity of 20 same-class and 20 different-class test pairs: mean distance $ms vs $md, verdicts agree with the labels: $agree"
  check "Similarity: same-class test pairs closer than different-class ones ($ms < $md)" \
    "awk 'BEGIN { exit !($ms < $md) }'"
  check "Similarity: verdicts agree with the labels for >= 70% of the pairs ($agree)" "fge '$agree' 0.70"
  # the same distances from the checkpoint, computed here by the host's build
  for k in 0 1 20 21; do
    read -r l r d < <("$py" -c 'import json,sys; p=json.load(open(sys.argv[1]))["pairs"][int(sys.argv[2])]; print(p["left"], p["right"], p["distance"])' "$work/run-probe.json" "$k")
    "$bin/siam-client" predict --checkpoint "$out/global.ckpt" --data "$data" --test-index "$l" "$r" \
      --json >"$work/predict.json" 2>"$work/predict.err"
    mine=$(json_field "$work/predict.json" distance)
    check "test images $l:$r: the container's distance $d = the host's siam-client predict on its checkpoint (${mine:-none})" \
      "[ -n '$mine' ] && awk 'BEGIN { x = $d - $mine; if (x < 0) x = -x; exit !(x <= 1e-5 * (1 + $mine)) }'"
  done

  E stop -t 15 "$srv" >/dev/null 2>&1
  code=$(exit_code "$srv" 30)
  E logs "$srv" >"$work/server.out" 2>"$work/server.log"
  check "server container stops on SIGTERM with exit 0 ($code)" "[ '$code' = 0 ]"
  check "server wrote the checkpoint of round $round at shutdown" \
    "grep -q 'checkpoint of round $round (shutdown)' '$work/server.log'"
  E rm -f -v "$srv" siam-ct-worker-0 siam-ct-worker-1 >/dev/null 2>&1
  E network rm "$net" >/dev/null 2>&1
  phase_end
}

# containers of a compose service (compose names them differently across versions; both
# podman-compose and docker compose label them)
compose_container() {
  E ps -a --filter "label=com.docker.compose.project=$project" \
    --filter "label=com.docker.compose.service=$1" --format '{{.Names}}' | head -n 1
}

phase_compose() {
  phase_start compose
  if [ -z "$compose_cmd" ]; then
    echo "note compose phase not run: $compose_why"
    phase_end
    return
  fi
  (cd "$root" && $compose_cmd -p "$project" -f docker/compose.yaml up -d) >"$work/compose-up.log" 2>&1
  check "$compose_cmd -f docker/compose.yaml up -d exits 0" "[ $? -eq 0 ] || show 30 '$work/compose-up.log'"
  local srv w
  srv=$(compose_container siam-server)
  check "compose: the siam-server service runs ($srv)" "[ -n '$srv' ]"
  for w in worker-0 worker-1; do
    c=$(compose_container "$w")
    code=$([ -n "$c" ] && exit_code "$c")
    [ -n "$c" ] && E logs "$c" >"$work/compose-$w.log" 2>&1
    check "compose: $w exits 0 (${code:-no container})" "[ '$code' = 0 ] || show 20 '$work/compose-$w.log'"
  done
  if [ -n "$srv" ]; then
    E logs "$srv" >"$work/compose-server.log" 2>&1
    n2=$(rounds_closed_by_2 "$work/compose-server.log")
    check "compose: $n2 averaging rounds closed by both workers (>= 1)" "[ '$n2' -ge 1 ]"
    probe 127.0.0.1:50051 "$work/compose-probe.json" --pairs 5
    check "compose: Status and Similarity from the host through the published port 50051" \
      "[ -s '$work/compose-probe.json' ] || show 30 '$work/compose-probe.json.err'"
    round=$(num "$work/compose-probe.json" round) joined=$(num "$work/compose-probe.json" joined_workers)
    ms=$(printf '%.4f' "$(num "$work/compose-probe.json" mean_same)")
    md=$(printf '%.4f' "$(num "$work/compose-probe.json" mean_diff)")
    check "compose: round $round >= 1 with 2 workers joined ($joined); same-class pairs closer ($ms < $md)" \
      "[ '${round:-0}' -ge 1 ] && [ '$joined' = 2 ] && awk 'BEGIN { exit !($ms < $md) }'"
  fi
  (cd "$root" && $compose_cmd -p "$project" -f docker/compose.yaml down -v) >"$work/compose-down.log" 2>&1
  check "$compose_cmd down -v exits 0" "[ $? -eq 0 ] || show 20 '$work/compose-down.log'"
  check "compose: down -v leaves no container and no volume of the project" \
    "[ -z \"\$(E ps -aq --filter label=com.docker.compose.project=$project)\" ] && ! E volume ls --format '{{.Name}}' | grep -q '^${project}_'"
  # podman-compose 1.0 leaves the project's network behind (docker compose removes it)
  E network rm "${project}_default" >/dev/null 2>&1
  phase_end
}

phase_kube() {
  phase_start kubernetes
  if [ "$engine" != podman ]; then
    echo "note kubernetes phase not run: it uses podman kube play"
    phase_end
    return
  fi
  local knet=siam-ct-k8s srv ip
  E network create "$knet" >/dev/null 2>&1
  E kube play --network "$knet" "$root/docker/k8s/server.yaml" >"$work/kube-server.log" 2>&1
  check "podman kube play docker/k8s/server.yaml exits 0" "[ $? -eq 0 ] || show 30 '$work/kube-server.log'"
  srv=$(E ps -a --filter label=app.kubernetes.io/component=server --format '{{.Names}}' | head -n 1)
  ip=$(E inspect --format '{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}' "$srv" 2>/dev/null | awk '{ print $1 }')
  check "kubernetes: the Deployment's pod runs its siam-server container ($srv at ${ip:-no address})" \
    "[ -n '$srv' ] && [ -n '$ip' ]"
  check "kubernetes: the server runs as the manifest's runAsUser 10001" \
    "[ \"\$(E exec '$srv' id -u)\" = 10001 ]"
  # what the kubelet's gRPC probes do: Health/Check with service "" at the pod's address
  probe "$ip:50051" "$work/kube-probe0.json"
  check "kubernetes: the probes' call, health at the pod's $ip:50051: SERVING before any worker" \
    "[ \"\$(num '$work/kube-probe0.json' health)\" = SERVING ] || show 30 '$work/kube-probe0.json.err'"
  # what Kubernetes adds to the Job's pod template: the Job controller one Pod per completion
  # index with JOB_COMPLETION_INDEX; the cluster DNS the Service's name (here the server pod's
  # address stands for the Service's); the kubelet, unless enableServiceLinks is false, the
  # Service's variables (SIAM_SERVER_SERVICE_HOST, SIAM_SERVER_PORT, ... for siam-server)
  "$py" - "$root/docker/k8s/workers.yaml" "$root/docker/k8s/server.yaml" "$ip" \
    "$work/kube-workers.yaml" <<'PYEOF'
import copy, sys, yaml
job_file, server_file, ip, out = sys.argv[1:]
services = [d for d in yaml.safe_load_all(open(server_file)) if d and d.get("kind") == "Service"]

def service_links(svc):
    """the variables the kubelet sets for a Service in the pods of its namespace"""
    name = svc["metadata"]["name"].upper().replace("-", "_")
    ports = svc["spec"]["ports"]
    env = {name + "_SERVICE_HOST": ip, name + "_SERVICE_PORT": str(ports[0]["port"])}
    for p in ports:
        if p.get("name"):
            env["%s_SERVICE_PORT_%s" % (name, p["name"].upper().replace("-", "_"))] = str(p["port"])
    first = ports[0]
    env[name + "_PORT"] = "%s://%s:%d" % (first.get("protocol", "TCP").lower(), ip, first["port"])
    for p in ports:
        proto = p.get("protocol", "TCP")
        key = "%s_PORT_%d_%s" % (name, p["port"], proto)
        env[key] = "%s://%s:%d" % (proto.lower(), ip, p["port"])
        env.update({key + "_PROTO": proto.lower(), key + "_PORT": str(p["port"]), key + "_ADDR": ip})
    return env

pods = []
for job in yaml.safe_load_all(open(job_file)):
    if not job or job.get("kind") != "Job":
        continue
    template = job["spec"]["template"]
    for i in range(int(job["spec"].get("completions", 1))):
        spec = copy.deepcopy(template["spec"])
        spec["restartPolicy"] = "Never"  # a failure shows as an exit code, not as restarts
        spec["hostAliases"] = [{"ip": ip, "hostnames": [s["metadata"]["name"] for s in services]}]
        links = {}
        if spec.pop("enableServiceLinks", True):
            for svc in services:
                links.update(service_links(svc))
        for c in spec["containers"]:
            env = c.setdefault("env", [])
            env.extend({"name": k, "value": v} for k, v in sorted(links.items()))
            env.append({"name": "JOB_COMPLETION_INDEX", "value": str(i)})
        meta = {"name": "%s-%d" % (job["metadata"]["name"], i),
                "labels": dict(template.get("metadata", {}).get("labels", {}))}
        pods.append({"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec})
if not pods:
    sys.exit("no Job in " + job_file)
yaml.safe_dump_all(pods, open(out, "w"))
PYEOF
  E kube play --network "$knet" "$work/kube-workers.yaml" >"$work/kube-workers.log" 2>&1
  check "podman kube play of the Job's pods (indices 0 and 1) exits 0" "[ $? -eq 0 ] || show 30 '$work/kube-workers.log'"
  local c n=0
  while read -r c; do
    [ -n "$c" ] || continue
    n=$((n + 1))
    code=$(exit_code "$c")
    E logs "$c" >"$work/kube-$c.log" 2>&1
    check "kubernetes: $c exits 0 ($code)" "[ '$code' = 0 ] || show 20 '$work/kube-$c.log'"
  done < <(E ps -a --filter label=app.kubernetes.io/component=worker --format '{{.Names}}')
  check "kubernetes: 2 worker pods ran ($n)" "[ $n = 2 ]"
  E logs "$srv" >"$work/kube-server.log" 2>&1
  n2=$(rounds_closed_by_2 "$work/kube-server.log")
  check "kubernetes: $n2 averaging rounds closed by both workers (>= 1)" "[ '$n2' -ge 1 ]"
  check "kubernetes: the server wrote its checkpoint into its volume" \
    "grep -q 'checkpoint of round [0-9]* (periodic) written to /var/lib/siam/global.ckpt' '$work/kube-server.log'"
  probe "$ip:50051" "$work/kube-probe.json"
  check "kubernetes: Status at the pod's address: round >= 1, both workers joined" \
    "[ \"\$(num '$work/kube-probe.json' round)\" -ge 1 ] && [ \"\$(num '$work/kube-probe.json' joined_workers)\" = 2 ]"
  E kube down "$work/kube-workers.yaml" >/dev/null 2>&1
  E kube down "$root/docker/k8s/server.yaml" >"$work/kube-down.log" 2>&1
  check "podman kube down docker/k8s/server.yaml exits 0" "[ $? -eq 0 ] || show 30 '$work/kube-down.log'"
  E network rm "$knet" >/dev/null 2>&1
  phase_end
}

containers_main() {
  clean_engine  # what a killed run may have left
  phase_run
  phase_compose
  phase_kube
  echo "$checks $fails" >"$work/counts"
}

# own_netavark_run_dir: podman 4.3 as root keeps netavark's IP allocations and aardvark-dns's
# configuration in /run/containers/networks, whatever its settings; aardvark-dns serves every
# network of that directory, the host's too. In a mount namespace of the test's own, a tmpfs
# there keeps the two apart.
own_netavark_run_dir() {
  [ "$engine" = podman ] || return 0
  mkdir -p /run/containers/networks &&
    mount -t tmpfs -o mode=0755,size=16m siam-container-test /run/containers/networks ||
    fail_now "cannot mount a tmpfs on /run/containers/networks in the test's mount namespace"
  ip link set lo up || fail_now "cannot bring up lo in the test's network namespace"
}
# the environment of the outer run (exported below) holds the settings
case "${1:-}" in
  --in-netns) own_netavark_run_dir; trap 'clean_engine' EXIT; containers_main; exit 0 ;;
  --clean) own_netavark_run_dir; clean_engine; exit 0 ;;
  --netprobe)
    own_netavark_run_dir
    podman network create siam-ct-probe >/dev/null && podman run --rm --network siam-ct-probe debian:bookworm-slim true
    rc=$?
    podman network rm -f siam-ct-probe >/dev/null
    exit $rc ;;
esac

# ---------------------------------------------------------------------------------------------
# Set-up: which engine, its configuration, the base images and the image
# ---------------------------------------------------------------------------------------------

if is_sanitizer_build "$bin/siam-server"; then
  skip "sanitizer build: the image is built from the sources without sanitizers, and the normal build's run of this test covers it"
fi
for prog in siam-server siam-client; do
  [ -x "$bin/$prog" ] || fail_now "$bin/$prog not built"
done
[ -f "$data/t10k-images-idx3-ubyte.gz" ] || fail_now "no Fashion-MNIST in $data (apt-get install dataset-fashion-mnist)"
host_version=$("$bin/siam-server" --version | awk '{ print $2 }')

# podman_usable: 0 when podman can be set up here; else why in $why
podman_usable() {
  why=""
  command -v podman >/dev/null || { why="podman is not installed"; return 1; }
  [ "$(id -u)" = 0 ] || { why="podman runs here as root only (this test does not set up rootless podman): run it as root"; return 1; }
  local t
  for t in runc iptables unshare ip; do
    command -v "$t" >/dev/null || { why="$t not found (podman needs runc; netavark's networks need iptables)"; return 1; }
  done
  command -v catatonit >/dev/null || [ -x /usr/libexec/podman/catatonit ] ||
    { why="catatonit not found (podman's pods, for kube play, need it)"; return 1; }
  command -v podman-compose >/dev/null || { why="podman-compose is not installed"; return 1; }
  return 0
}

engine=${SIAM_CONTAINER_ENGINE:-}
reasons=""
if [ -z "$engine" ] || [ "$engine" = podman ]; then
  if podman_usable; then engine=podman; else reasons="podman: $why"; [ "$engine" = podman ] && engine=none; fi
fi
if [ -z "$engine" ] || [ "$engine" = docker ]; then
  if ! command -v docker >/dev/null; then
    reasons="${reasons:+$reasons; }docker: not installed"; engine=none
  elif ! docker info >/dev/null 2>&1; then
    reasons="${reasons:+$reasons; }docker: the CLI is here but no daemon answers (docker info fails)"; engine=none
  else
    engine=docker
  fi
fi
[ "$engine" = none ] && skip "no container engine can run here ($reasons); $install_hint"
[ -n "$reasons" ] && echo "note using $engine ($reasons)"
echo "engine: $engine ($("$engine" --version 2>/dev/null | head -n 1))"

cache=${SIAM_CONTAINER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/siam/containers}
mkdir -p "$cache" || fail_now "cannot create the cache $cache"
# one run at a time: the storage and the run state are shared between runs
exec 8>"$cache/.lock"
flock -w 1800 8 || fail_now "another container_test holds $cache/.lock"
run_id=$$
work=$(mktemp -d)
: >"$work/times"
t_total=$(date +%s.%N)

if [ "$engine" = podman ]; then
  # the test's own podman: what sandboxed hosts (gVisor) need and others accept: runc (crun
  # refuses hybrid cgroups), cgroupfs (no systemd), events to a file (no journal), netavark,
  # and default ulimits the runtime can set without raising a hard limit (nofile and nproc at
  # the hard limits, nproc at most pid_max: more means nothing, and gVisor refuses it); the
  # storage in the cache, the rest in $state; podman's database remembers the run root and tmp
  # dir, so those paths do not change between runs
  mkdir -p "$state"/{conf,run,tmp,networks,xdg-config,xdg-data,xdg-run} "$cache/tmp" "$cache/storage"
  nofile=$(ulimit -Hn) nproc=$(ulimit -Hu) pid_max=$(cat /proc/sys/kernel/pid_max 2>/dev/null || echo 32768)
  [ "$nofile" = unlimited ] && nofile=1048576
  [ "$nproc" = unlimited ] || [ "$nproc" -le "$pid_max" ] || nproc=$pid_max
  ulimits="\"nofile=$nofile:$nofile\""
  [ "$nproc" = unlimited ] || ulimits="$ulimits, \"nproc=$nproc:$nproc\""
  cat >"$state/conf/containers.conf" <<EOF
[containers]
default_ulimits = [$ulimits]

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$state/tmp/events.log"
runtime = "runc"
tmp_dir = "$state/tmp"
image_copy_tmp_dir = "$cache/tmp"

[network]
network_backend = "netavark"
network_config_dir = "$state/networks"
EOF
  cat >"$state/conf/storage.conf" <<EOF
[storage]
driver = "overlay"
graphroot = "$cache/storage"
runroot = "$state/run"
EOF
  export CONTAINERS_CONF=$state/conf/containers.conf CONTAINERS_STORAGE_CONF=$state/conf/storage.conf \
    TMPDIR=$cache/tmp XDG_CONFIG_HOME=$state/xdg-config XDG_DATA_HOME=$state/xdg-data \
    XDG_RUNTIME_DIR=$state/xdg-run
  net=siam-ct project=siam-ct
  compose_cmd=podman-compose compose_why=""
else
  net=siam-ct-$run_id project=siam-ct-$run_id
  if docker compose version >/dev/null 2>&1; then
    compose_cmd="docker compose" compose_why=""
    if ! "$py" -c 'import socket; s = socket.socket(); s.bind(("0.0.0.0", 50051))' 2>/dev/null; then
      compose_cmd="" compose_why="the host's port 50051, which docker/compose.yaml publishes, is in use"
    fi
  else
    compose_cmd="" compose_why="docker compose is not available (docker's compose plugin)"
  fi
fi

export engine run_id work net project compose_cmd compose_why host_version

# in_netns ARG...: this script with ARG in network and mount namespaces of its own (podman),
# else here
in_netns() {
  if [ "$engine" = podman ]; then
    unshare --net --mount --propagation private -- bash "$0" "$@"
  else
    bash "$0" "$@"
  fi
}
# unmount_under DIR: what is still mounted below DIR (a killed run's container mounts)
unmount_under() {
  findmnt -rn -o TARGET | awk -v d="$1/" 'index($0, d) == 1' | sort -r | xargs -r -n 1 umount -l 2>/dev/null
}
# podman as root writes its blob-info cache to /var/lib/containers/cache whatever its storage
# settings, and the tmpfs for netavark's state needs /run/containers/networks: removed at exit
# when this run made them (an existing blob-info cache only gains entries)
blob_cache=/var/lib/containers/cache/blob-info-cache-v1.boltdb
made_paths=()
if [ "$engine" = podman ]; then
  for p in /var/lib/containers /var/lib/containers/cache "$blob_cache" /run/containers \
    /run/containers/networks; do
    [ -e "$p" ] || made_paths=("$p" "${made_paths[@]}")
  done
fi
cleanup() {
  if [ -n "${in_netns_started:-}" ]; then
    # containers a killed inner run left: removed from a namespace of their own, so that their
    # network teardown cannot touch the host's
    in_netns --clean >/dev/null 2>&1
  fi
  if [ "$engine" = podman ]; then
    unmount_under "$state"
    unmount_under "$cache/storage"
    rm -rf "$state" "$cache/tmp"
    for p in "${made_paths[@]}"; do
      if [ "$p" = "$blob_cache" ]; then rm -f "$p"; else rmdir "$p" 2>/dev/null; fi
    done
  fi
  rm -rf "$work"
}
trap cleanup EXIT

python_stubs "$work/stubs" >/dev/null

if [ "$engine" = podman ]; then
  podman info >"$work/info.log" 2>&1 ||
    skip "podman info fails with this test's settings ($(tail -n 3 "$work/info.log" | tr '\n' ' ')); $install_hint"
fi

# ---- 1. base images -------------------------------------------------------------------------
phase_start base-images
# the host's Debian archive: the first bookworm mirror and security mirror in its apt sources
mirrors() {
  "$py" - <<'PYEOF'
import glob, re
main, security = None, None
def take(uri, suites):
    global main, security
    for s in suites:
        if s in ("bookworm", "bookworm-updates") and not main:
            main = uri
        if s == "bookworm-security" and not security:
            security = uri
for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
    for stanza in re.split(r"\n\s*\n", open(path).read()):
        f = {}
        for line in stanza.splitlines():
            if ":" in line and not line.startswith((" ", "#")):
                k, v = line.split(":", 1)
                f[k.strip().lower()] = v.split()
        if "deb" in f.get("types", []) and f.get("enabled", ["yes"])[0] != "no":
            for uri in f.get("uris", []):
                take(uri, f.get("suites", []))
for path in ["/etc/apt/sources.list"] + sorted(glob.glob("/etc/apt/sources.list.d/*.list")):
    try:
        lines = open(path).read().splitlines()
    except OSError:
        continue
    for line in lines:
        w = re.sub(r"\[[^]]*\]", "", line.split("#", 1)[0]).split()
        if len(w) >= 3 and w[0] == "deb":
            take(w[1], [w[2]])
print(main or "http://deb.debian.org/debian", security or "http://deb.debian.org/debian-security")
PYEOF
}
have_image() {
  if [ "$engine" = podman ]; then podman image exists "$1"; else docker image inspect "$1" >/dev/null 2>&1; fi
}
make_base_images() {
  local tree=$cache/debian-bookworm mirror security
  read -r mirror security < <(mirrors)
  mirror=${SIAM_DEBIAN_MIRROR:-$mirror}
  if [ ! -f "$tree.done" ]; then
    make_tree "$tree" "$mirror" "$security"
    : >"$tree.done"
  fi
  # the -slim variant: no documentation, manuals or translations, now or from later installs
  local extra=$work/slim-extra
  mkdir -p "$extra/etc/dpkg/dpkg.cfg.d"
  printf '%s\n' 'path-exclude /usr/share/doc/*' 'path-include /usr/share/doc/*/copyright' \
    'path-exclude /usr/share/man/*' 'path-exclude /usr/share/info/*' \
    'path-exclude /usr/share/locale/*' 'path-include /usr/share/locale/locale.alias' \
    'path-exclude /usr/share/groff/*' 'path-exclude /usr/share/lintian/*' \
    >"$extra/etc/dpkg/dpkg.cfg.d/docker-slim"
  chmod 0644 "$extra/etc/dpkg/dpkg.cfg.d/docker-slim"
  if ! have_image debian:bookworm; then
    tar -C "$tree" -c . | "$engine" import --change 'CMD ["bash"]' - debian:bookworm >"$work/import.log" 2>&1 ||
      { cat "$work/import.log"; fail_now "$engine import debian:bookworm"; }
  fi
  if ! have_image debian:bookworm-slim; then
    tar -c -C "$tree" --exclude='./usr/share/doc/*' --exclude='./usr/share/man/*' \
      --exclude='./usr/share/info/*' --exclude='./usr/share/locale/*' . \
      -C "$extra" ./etc/dpkg/dpkg.cfg.d/docker-slim |
      "$engine" import --change 'CMD ["bash"]' - debian:bookworm-slim >"$work/import.log" 2>&1 ||
      { cat "$work/import.log"; fail_now "$engine import debian:bookworm-slim"; }
  fi
  rm -rf "$tree" "$tree.done"
}
# make_tree DIR MIRROR SECURITY: a minimal Debian 12 like the official images' root file system
make_tree() {
  local tree=$1 mirror=$2 security=$3
  command -v debootstrap >/dev/null ||
    skip "no debian:bookworm image and no debootstrap to make one (no registry to pull from here); $install_hint"
  rm -rf "$tree"
  echo "debootstrap --variant=minbase bookworm from $mirror"
  nice -n 10 debootstrap --variant=minbase bookworm "$tree" "$mirror" >"$work/debootstrap.log" 2>&1 ||
    { tail -n 15 "$work/debootstrap.log"; rm -rf "$tree"; skip "debootstrap from $mirror failed (is the archive reachable? SIAM_DEBIAN_MIRROR=URL picks another mirror)"; }
  # what the official images have: the archive in deb822 sources, no apt lists or .debs, and
  # apt set to delete downloaded packages after installing (docker-clean)
  rm -f "$tree/etc/apt/sources.list"
  cat >"$tree/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $mirror
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  cat >"$tree/etc/apt/apt.conf.d/docker-clean" <<'EOF'
// as in Debian's official container images: no package cache left in image layers
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
  local proxy=""
  eval "$(apt-config shell proxy Acquire::http::Proxy 2>/dev/null)"
  [ -z "$proxy" ] || echo "Acquire::http::Proxy \"$proxy\";" >"$tree/etc/apt/apt.conf.d/01proxy"
  rm -rf "$tree"/var/lib/apt/lists/* "$tree"/var/cache/apt/archives/*.deb "$tree"/var/cache/apt/*.bin
}
if have_image debian:bookworm && have_image debian:bookworm-slim; then
  echo "debian:bookworm and debian:bookworm-slim are there (cached)"
else
  if [ "$engine" = docker ]; then
    # a real Docker Hub, where there is one
    timeout 120 docker pull -q debian:bookworm >/dev/null 2>&1 && timeout 120 docker pull -q debian:bookworm-slim >/dev/null 2>&1
  fi
  have_image debian:bookworm && have_image debian:bookworm-slim || make_base_images
fi
phase_end

# can the engine run a container at all, and (podman) one on a network of its own?
E run --rm --network none debian:bookworm-slim true >"$work/trivial.log" 2>&1 ||
  skip "$engine cannot run a container here: $(tail -n 3 "$work/trivial.log" | tr '\n' ' '); $install_hint"
if [ "$engine" = podman ]; then
  in_netns --netprobe >"$work/netprobe.log" 2>&1 ||
    skip "podman cannot run a container on a network of its own inside unshare --net: $(grep -v syslog "$work/netprobe.log" | tail -n 3 | tr '\n' ' ') (netavark needs iptables); $install_hint"
fi

# ---- 2. the image -----------------------------------------------------------------------------
phase_start image
if [ "$engine" = podman ]; then
  # the host's network for apt-get, no netavark network
  (cd "$root" && nice -n 10 podman build --network host -f docker/Dockerfile -t "$image" .) \
    >"$work/build.log" 2>&1
else
  (cd "$root" && docker build -f docker/Dockerfile -t "$image" .) >"$work/build.log" 2>&1
fi
rc=$?
if [ $rc -ne 0 ]; then
  tail -n 40 "$work/build.log"
  fail_now "$engine build -f docker/Dockerfile exited $rc"
fi
if [ "$engine" = podman ]; then
  # the layers of earlier builds go; the build stage's, the cache of the next build, stay: its
  # image (the last step's "--> ID" before the second stage starts) gets a name
  stage=$(awk '/^\[2\/2\]/ { print last; exit } /^--> [0-9a-f]+$/ { last = $2 }' "$work/build.log")
  if [ -n "$stage" ] && podman tag "$stage" localhost/siam-ct-build-stage >/dev/null 2>&1; then
    podman image prune -f >/dev/null 2>&1
  else
    echo "note the build stage's image is not in the build's output: earlier layers kept"
  fi
fi
size=$(E image inspect --format '{{.Size}}' "$image" | awk '{ printf "%.0f", $1 / 1e6 }')
echo "image $image: $size MB ($(grep -c 'Using cache' "$work/build.log") cached steps)"
check "the image's programs are the version built here ($host_version)" \
  "[ \"\$(E run --rm --network none '$image' siam-server --version)\" = 'siam-server $host_version' ]"
check "the image runs siam-client --help as is (the entrypoint passes other commands through)" \
  "E run --rm --network none '$image' siam-client --help | grep -- '--worker-index' >/dev/null"
check "the image's default user is siam (uid 10001), not root" \
  "[ \"\$(E run --rm --network none '$image' id -u)\" = 10001 ]"
phase_end

# ---- 3-5. the containers --------------------------------------------------------------------
in_netns_started=1
in_netns --in-netns
rc=$?
if [ -f "$work/counts" ]; then
  read -r c f <"$work/counts"
  checks=$((checks + c)) fails=$((fails + f))
else
  echo "FAIL the containers' phases ended early (exit $rc)"
  fails=$((fails + 1))
fi
in_netns_started=""

total=$(awk -v a="$t_total" -v b="$(date +%s.%N)" 'BEGIN { printf "%.0f", b - a }')
echo "== times (s): $(awk '{ printf "%s%s %s", (NR > 1 ? ", " : ""), $1, $2 }' "$work/times"); total $total"
[ "$engine" = podman ] && echo "cache: $(du -sh "$cache" 2>/dev/null | cut -f1) in $cache"
echo "$((checks - fails)) passed, $fails failed"
[ "$fails" -eq 0 ] || { echo "container_test: $fails of $checks checks failed"; exit 1; }
echo "container_test: all $checks checks passed"
