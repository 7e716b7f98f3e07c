#!/usr/bin/env bash
# Two Ray nodes on one machine, for eval/bench_cluster.py: each node in its own network namespace, joined by a veth
# pair (Ray advertises a node's interface address, so two nodes need two addresses). Needs root and `ip`.
#
#   sudo eval/two_nodes.sh [bench_cluster.py arguments, e.g. --limit 200 --seconds 30]
#
# The head (1 CPU) runs in penny-a at 10.77.0.1, the worker (1 CPU) in penny-b at 10.77.0.2; the benchmark runs in
# penny-a against --cluster 10.77.0.1:6390. Both see the same files (namespaces split the network only), which is
# the shared storage a real cluster needs. Ray 2.60 turns token auth on: the head writes ~/.ray/auth_token, and the
# worker and every client read it with RAY_AUTH_MODE=token. Everything is torn down on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-$PWD/.venv}
RAY="$VENV/bin/ray"
HEAD=10.77.0.1
WORKER=10.77.0.2
export RAY_AUTH_MODE=token RAY_USAGE_STATS_ENABLED=0 PYTHONPATH="${PYTHONPATH:-$PWD}"

# Only the processes inside the two namespaces are ended, by id: `ray stop` would end every Ray on the machine.
stop_namespace() {
    local pids
    pids=$(ip netns pids "$1" 2>/dev/null || true)
    if [ -n "$pids" ]; then kill "-$2" $pids 2>/dev/null || true; fi
}
teardown() {
    for ns in penny-b penny-a; do stop_namespace "$ns" TERM; done
    sleep 3
    for ns in penny-b penny-a; do
        stop_namespace "$ns" KILL
        ip netns delete "$ns" 2>/dev/null || true
    done
    # what `ray stop` would also do: else the next ray.init() without an address looks for this dead cluster
    if grep -q "^$HEAD:" /tmp/ray/ray_current_cluster 2>/dev/null; then rm -f /tmp/ray/ray_current_cluster; fi
}
trap teardown EXIT

ip netns add penny-a
ip netns add penny-b
ip link add penny-va type veth peer name penny-vb
ip link set penny-va netns penny-a
ip link set penny-vb netns penny-b
ip netns exec penny-a ip addr add "$HEAD/24" dev penny-va
ip netns exec penny-b ip addr add "$WORKER/24" dev penny-vb
for ns in penny-a penny-b; do
    ip netns exec "$ns" ip link set lo up
done
ip netns exec penny-a ip link set penny-va up
ip netns exec penny-b ip link set penny-vb up

started=$(date +%s.%N)
ip netns exec penny-a "$RAY" start --head --node-ip-address="$HEAD" --port=6390 --num-cpus=1 --include-dashboard=false
echo "head up in $(echo "$(date +%s.%N) - $started" | bc) s"
started=$(date +%s.%N)
ip netns exec penny-b "$RAY" start --address="$HEAD:6390" --node-ip-address="$WORKER" --num-cpus=1
echo "worker joined in $(echo "$(date +%s.%N) - $started" | bc) s"

# The clients spread over both nodes' Serve proxies, as a load balancer in front of the cluster would: a proxy prefers
# replicas on its own node, so through the head's alone one replica got almost every answer (605 of 611).
ip netns exec penny-a "$VENV/bin/python" -m eval.bench_cluster --cluster "$HEAD:6390" --proxies "$HEAD,$WORKER" "$@"
