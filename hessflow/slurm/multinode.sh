#!/usr/bin/env bash
# multinode.sh start|stop|status|kill-node NODE|revive-node NODE -- a real multi-node Slurm inside
# this machine/container: one slurmctld and N slurmd "nodes" (default 4), each slurmd in its own network namespace and
# UTS namespace (own hostname hf-node1..N, own address) on a private bridge. Used by the
# multi-node tests (tests/conftest_multinode.py) and for trying multi-node profiles locally
# (examples/multinode*.yaml). See docs/slurm.md, "Multi-node test cluster".
#
#   start   (root) write slurm.conf and a hosts file, create the bridge, the namespaces and their
#           veth links, start a private munged, slurmctld and every slurmd, wait until every node
#           is idle. A no-op success when the cluster is already up.
#   stop    cancel the jobs, kill the daemons this script started (by PID) and every process left
#           in the node namespaces, delete the namespaces, the veth links and the bridge, remove
#           state/spool/run. Logs stay in $DIR/log.
#   status  the daemons' PIDs and `sinfo`; exit 0 when up, 1 when not.
#   kill-node hf-nodeK    a node failure: SIGKILL its slurmd and every process in its network
#           namespace (job steps, worker pools, tasks); slurmctld marks it DOWN after
#           SlurmdTimeout (20 s) and fails its jobs (NODE_FAIL).
#   revive-node hf-nodeK  start its slurmd again and return it to service (idle).
#
# The network (all of it created and removed here, nothing else is touched):
#   bridge $BR (default hfbr0) in the root namespace, address $NET.1/24 (hostname hf-login): the
#       "login node", where the driver (`hessflow run`) and sbatch run; workers reach the driver's
#       interchange at this address (the profile's `address:`);
#   namespace hf-ctl: slurmctld, address $NET.2/24 (veth hfv0 on the bridge);
#   namespace hf-nodeK: a slurmd, address $NET.(10+K)/24 (veth hfvK on the bridge).
#   No namespace has a default route: a node reaches only the bridge's /24 and its own loopback,
#   and nothing of this cluster listens outside those addresses.
#   $NET defaults to 10.213.7 (HESSFLOW_MULTINODE_NET); it must be unused on this machine.
# Hostnames: slurmctld and every slurmd run in a UTS namespace of their own (hostname hf-ctl,
# hf-nodeK). $DIR/hosts (hf-ctl and every node) is bind-mounted over
# /etc/hosts in a private mount namespace (unshare --mount) of each daemon, so the daemons and
# the jobs they start (srun, torch's rendezvous, MPI) resolve node names both ways; slurm.conf
# also gives every address (SlurmctldHost=hf-ctl($NET.1), NodeAddr=).
# Authentication: a private munged (runuser -u munge) on its own socket ($DIR/munge/munge.socket,
# AuthInfo=socket=...), so this cluster never depends on, or stops, the munged of cluster.sh.
# Ports: SlurmctldPort 6827, SlurmdPort 6828 (cluster.sh uses 6817/6818): both clusters can run at
# once. Every node listens on 6828 at its own address (separate network namespaces), so no
# multiple-slurmd build or per-node ports are needed.
#
# State directory: $HESSFLOW_MULTINODE_DIR (default /tmp/hessflow-multinode):
#   slurm.conf  hosts  env.sh (export SLURM_CONF=...)  run/*.pid  state/  spool/<node>/  log/  munge/
# The config is never linked into /etc/slurm: use SLURM_CONF=$DIR/slurm.conf (source $DIR/env.sh).
#
# Exit codes: 0 ok, 1 failure / not running (status), 2 usage, 3 not possible here (not root,
# Slurm/munge/ip/unshare missing, or network namespaces refused) -- the test fixture skips on 3.
set -uo pipefail
# shellcheck source=daemons.sh
source "$(dirname "${BASH_SOURCE[0]}")/daemons.sh"   # log, die, pid_alive, kill_pidfile, take_lock, ...
shopt -s nullglob

DIR="${HESSFLOW_MULTINODE_DIR:-/tmp/hessflow-multinode}"
CONF="$DIR/slurm.conf"
HOSTS="$DIR/hosts"
NNODES="${HESSFLOW_MULTINODE_NODES:-4}"
NET="${HESSFLOW_MULTINODE_NET:-10.213.7}"
BR="${HESSFLOW_MULTINODE_BRIDGE:-hfbr0}"
CTL=hf-ctl
CTL_ADDR="$NET.2"
LOGIN=hf-login
LOGIN_ADDR="$NET.1"
NODE_CPUS="${HESSFLOW_MULTINODE_CPUS:-2}"
NODE_MEM_MB="${HESSFLOW_MULTINODE_MEM_MB:-2000}"
START_TIMEOUT="${HESSFLOW_SLURM_TIMEOUT:-90}"
MUNGE_SOCK="$DIR/munge/munge.socket"
export SLURM_CONF="$CONF"

unavailable() { log "$*"; exit 3; }

node_name() { echo "hf-node$1"; }
node_addr() { echo "$NET.$((10 + $1))"; }
node_list() { echo "hf-node[1-$NNODES]"; }

check_possible() {
    [[ "$(id -u)" -eq 0 ]] || unavailable "the multi-node cluster needs root (network namespaces, SlurmUser=root)"
    local b
    for b in /usr/sbin/slurmctld /usr/sbin/slurmd /usr/bin/sbatch /usr/sbin/munged; do
        [[ -x "$b" ]] || unavailable "Slurm/munge not installed ($b missing): run hessflow/slurm/cluster.sh start once, it installs them"
    done
    command -v ip >/dev/null || unavailable "'ip' (iproute2) not found"
    command -v unshare >/dev/null || unavailable "'unshare' (util-linux) not found"
    [[ "$NNODES" =~ ^[0-9]+$ ]] && (( NNODES >= 2 && NNODES <= 200 )) \
        || die "HESSFLOW_MULTINODE_NODES=$NNODES: give 2..200"
    [[ "$NET" =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "HESSFLOW_MULTINODE_NET=$NET: give three octets, e.g. 10.213.7"
    if ip -o addr show 2>/dev/null | grep -v " $BR " | grep -q "inet $NET\."; then
        unavailable "addresses in $NET.0/24 are already in use on this machine (set HESSFLOW_MULTINODE_NET)"
    fi
    # can we make namespaces at all (containers without CAP_SYS_ADMIN / NET_ADMIN cannot)?
    unshare --net --uts --mount true 2>/dev/null \
        || unavailable "unshare --net --uts --mount is refused here (no CAP_SYS_ADMIN?): no network namespaces"
}

# ---------------------------------------------------------------------------- munge
munge_ok() { munge --socket="$MUNGE_SOCK" -n 2>/dev/null | unmunge --socket="$MUNGE_SOCK" >/dev/null 2>&1; }

start_munge() {
    pidfile_alive "$DIR/run/munged.pid" && munge_ok && return 0
    ensure_munge_key
    mkdir -p "$DIR/munge"
    chown munge:munge "$DIR/munge"; chmod 755 "$DIR/munge"
    rm -f "$DIR/munge/munged.pid" "$MUNGE_SOCK"
    # -F: foreground, so $! is munged itself; the socket, pid, seed and log are private
    setsid runuser -u munge -- /usr/sbin/munged -F --socket="$MUNGE_SOCK" \
        --pid-file="$DIR/munge/munged.pid" --seed-file="$DIR/munge/munged.seed" \
        --log-file="$DIR/munge/munged.log" </dev/null >>"$DIR/log/munged.out" 2>&1 9>&- &
    local wrapper=$!
    for _ in $(seq 50); do munge_ok && [[ -s "$DIR/munge/munged.pid" ]] && break; sleep 0.1; done
    # runuser stays as munged's parent: record munged's own PID (kill that, runuser follows)
    if [[ -s "$DIR/munge/munged.pid" ]]; then cp "$DIR/munge/munged.pid" "$DIR/run/munged.pid"
    else echo "$wrapper" >"$DIR/run/munged.pid"; fi
    munge_ok || die "munged started but munge -n | unmunge fails: $(tail -n 3 "$DIR/munge/munged.log" 2>/dev/null | tr '\n' ' ')"
}

# ---------------------------------------------------------------------------- config
write_conf() {
    local i nodes=""
    {
        echo "# Generated by hessflow/slurm/multinode.sh -- multi-node test cluster. Do not edit."
        echo "127.0.0.1 localhost"
        echo "$LOGIN_ADDR $LOGIN"
        echo "$CTL_ADDR $CTL"
        for i in $(seq "$NNODES"); do echo "$(node_addr "$i") $(node_name "$i")"; done
    } >"$HOSTS"
    for i in $(seq "$NNODES"); do
        nodes+="NodeName=$(node_name "$i") NodeAddr=$(node_addr "$i") NodeHostname=$(node_name "$i") CPUs=$NODE_CPUS RealMemory=$NODE_MEM_MB State=UNKNOWN"$'\n'
    done
    cat >"$CONF" <<EOF
# Generated by hessflow/slurm/multinode.sh -- multi-node test cluster ($NNODES nodes in network
# namespaces on bridge $BR, $NET.0/24). Do not edit.
ClusterName=hessflow-multi
SlurmctldHost=$CTL($CTL_ADDR)
$(common_conf)
AuthInfo=socket=$MUNGE_SOCK
SlurmctldPort=${HESSFLOW_MULTINODE_CTLD_PORT:-6827}
SlurmdPort=${HESSFLOW_MULTINODE_SLURMD_PORT:-6828}
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool/%n
SlurmctldPidFile=$DIR/state/slurmctld.pid
SlurmdPidFile=$DIR/spool/%n/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.%n.log
# a node whose slurmd stops answering is marked DOWN (and its jobs requeued/failed) after 20 s
SlurmdTimeout=20
SlurmctldTimeout=120
MessageTimeout=10
Waittime=0
TreeWidth=50
${nodes}PartitionName=debug Nodes=$(node_list) Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF
    printf 'export SLURM_CONF=%q\n' "$CONF" >"$DIR/env.sh"
}

# ---------------------------------------------------------------------------- network
add_netns() {  # add_netns NAME VETH ADDR: a namespace on the bridge
    local n="$1" v="$2" a="$3"
    ip netns del "$n" 2>/dev/null || true
    ip link del "$v" 2>/dev/null || true
    ip netns add "$n" || unavailable "ip netns add $n failed (no network namespaces here?)"
    echo "$n" >>"$DIR/run/netns"
    ip link add "$v" type veth peer name eth0 netns "$n" || die "cannot create veth $v"
    ip link set "$v" master "$BR" up
    ip -n "$n" addr add "$a/24" dev eth0
    ip -n "$n" link set lo up
    ip -n "$n" link set eth0 up
}

make_network() {
    local i
    if ! ip link show "$BR" >/dev/null 2>&1; then
        ip link add "$BR" type bridge || unavailable "cannot create bridge $BR (no CAP_NET_ADMIN?)"
        echo "$BR" >"$DIR/run/bridge"
    fi
    ip addr replace "$LOGIN_ADDR/24" dev "$BR" || die "cannot give $BR the address $LOGIN_ADDR/24"
    ip link set "$BR" up
    add_netns "$CTL" hfv0 "$CTL_ADDR"
    for i in $(seq "$NNODES"); do add_netns "$(node_name "$i")" "hfv$i" "$(node_addr "$i")"; done
}

remove_network() {
    local n i
    if [[ -f "$DIR/run/netns" ]]; then
        while read -r n; do
            [[ "$n" =~ ^hf-(ctl|node[0-9]+)$ ]] || continue
            ip netns del "$n" 2>/dev/null || true      # deleting a namespace removes its veth pair
        done <"$DIR/run/netns"
        rm -f "$DIR/run/netns"
    fi
    for i in $(seq 0 "$NNODES"); do ip link del "hfv$i" 2>/dev/null || true; done
    if [[ -f "$DIR/run/bridge" ]]; then
        ip link del "$(cat "$DIR/run/bridge")" 2>/dev/null || true
        rm -f "$DIR/run/bridge"
    elif ip link show "$BR" >/dev/null 2>&1; then
        ip addr del "$LOGIN_ADDR/24" dev "$BR" 2>/dev/null || true
    fi
}

# In a private mount namespace: hostname, our hosts file over /etc/hosts, then exec the daemon.
# nsenter --net (not `ip netns exec`, which remounts /sys and so hides /sys/fs/cgroup, without
# which slurmd 22.05 does not start), unshare and sh all exec: the background job's PID is the
# daemon's.
IN_NODE='hostname "$0" && mount --bind "$1" /etc/hosts && shift && exec "$@"'

start_slurmctld() {
    setsid nsenter --net="/run/netns/$CTL" unshare --uts --mount --propagation private \
        sh -c "$IN_NODE" "$CTL" "$HOSTS" /usr/sbin/slurmctld -D -c -f "$CONF" \
        </dev/null >>"$DIR/log/slurmctld.out" 2>&1 9>&- &
    echo $! >"$DIR/run/slurmctld.pid"
}

start_slurmd() {  # start_slurmd K
    local n; n="$(node_name "$1")"
    mkdir -p "$DIR/spool/$n"
    setsid nsenter --net="/run/netns/$n" unshare --uts --mount --propagation private \
        sh -c "$IN_NODE" "$n" "$HOSTS" /usr/sbin/slurmd -D -N "$n" -f "$CONF" \
        </dev/null >>"$DIR/log/slurmd.$n.out" 2>&1 9>&- &
    echo $! >"$DIR/run/slurmd.$n.pid"
}

node_states() { sinfo -h -N -o '%N %t' 2>/dev/null; }

is_up() {
    local i
    pidfile_alive "$DIR/run/slurmctld.pid" && pidfile_alive "$DIR/run/munged.pid" || return 1
    for i in $(seq "$NNODES"); do pidfile_alive "$DIR/run/slurmd.$(node_name "$i").pid" || return 1; done
    scontrol ping >/dev/null 2>&1
}

show_logs() {
    local f
    for f in "$DIR"/log/*.log "$DIR"/log/*.out; do
        [[ -s "$f" ]] || continue
        echo "---- tail $f" >&2; tail -n 12 "$f" >&2
    done
}

cmd_start() {
    if [[ -f "$CONF" ]] && is_up && ! node_states | grep -qvE ' (idle|mix|alloc|comp)'; then
        log "already running ($NNODES nodes: $(node_states | tr '\n' ' '))"
        echo "export SLURM_CONF=$CONF"
        return 0
    fi
    check_possible
    if [[ -d "$DIR/run" ]]; then cmd_stop >/dev/null 2>&1 || true; fi
    mkdir -p "$DIR"/{run,state,spool,log}
    write_conf
    make_network
    start_munge

    local t0=$SECONDS i pid bad
    start_slurmctld
    pid="$(cat "$DIR/run/slurmctld.pid")"
    for _ in $(seq 100); do scontrol ping >/dev/null 2>&1 && break; pid_alive "$pid" || break; sleep 0.2; done
    pid_alive "$pid" || { show_logs; die "slurmctld exited during start-up"; }
    for i in $(seq "$NNODES"); do start_slurmd "$i"; done

    while (( SECONDS - t0 < START_TIMEOUT )); do
        pidfile_alive "$DIR/run/slurmctld.pid" || { show_logs; die "slurmctld died during start-up"; }
        for i in $(seq "$NNODES"); do
            pidfile_alive "$DIR/run/slurmd.$(node_name "$i").pid" \
                || { show_logs; die "slurmd of $(node_name "$i") died during start-up"; }
        done
        bad="$(node_states | awk '$2 != "idle" {print $1 ":" $2}')"
        [[ -z "$bad" && -n "$(node_states)" ]] && break
        for n in $(node_states | awk '$2 ~ /^(down|drain|drng|inval)/ {print $1}'); do
            scontrol update NodeName="$n" State=RESUME >/dev/null 2>&1 || true
        done
        sleep 0.5
    done
    if [[ -n "$bad" || -z "$(node_states)" ]]; then
        show_logs
        die "nodes not idle after ${START_TIMEOUT}s: ${bad:-no sinfo}; daemons left running, run: $0 stop"
    fi
    log "up in $((SECONDS - t0))s: $NNODES nodes $(node_list) idle ($NODE_CPUS CPUs each) on $BR $NET.0/24, controller $CTL $CTL_ADDR, login (driver) address $LOGIN_ADDR, partition debug; state dir $DIR"
    echo "export SLURM_CONF=$CONF"
}

kill_netns_procs() {  # every process left in a node namespace (job steps, worker pools) was started by this cluster
    local n pids
    [[ -f "$DIR/run/netns" ]] || return 0
    while read -r n; do
        [[ "$n" =~ ^hf-node[0-9]+$ ]] || continue
        pids="$(ip netns pids "$n" 2>/dev/null | tr '\n' ' ')"
        # shellcheck disable=SC2086
        [[ -n "${pids// /}" ]] && kill -KILL $pids 2>/dev/null
    done <"$DIR/run/netns"
    return 0
}

cmd_stop() {
    [[ -d "$DIR/run" ]] || { log "not running (no $DIR/run)"; return 0; }
    if pidfile_alive "$DIR/run/slurmctld.pid" && [[ -f "$CONF" ]]; then cancel_all_jobs; fi
    local f
    for f in "$DIR"/run/slurmd.*.pid; do
        [[ -e "$f" ]] && kill_pidfile "$f" "$(basename "$f" .pid)"
    done
    kill_netns_procs
    kill_pidfile "$DIR/run/slurmctld.pid" slurmctld
    kill_pidfile "$DIR/run/munged.pid" munged
    remove_network
    rm -rf "$DIR/state" "$DIR/spool" "$DIR/run"
    rm -f "$MUNGE_SOCK" "$MUNGE_SOCK.lock"
    return 0
}

cmd_status() {
    local rc=0 f name
    for f in "$DIR/run/munged.pid" "$DIR/run/slurmctld.pid" "$DIR"/run/slurmd.*.pid; do
        name="$(basename "$f" .pid)"
        if pidfile_alive "$f"; then echo "$name: running (pid $(cat "$f"))"
        else echo "$name: not running"; rc=1; fi
    done
    if (( rc == 0 )); then
        sinfo -N 2>&1 || rc=1
        echo "export SLURM_CONF=$CONF"
    fi
    return $rc
}

check_node() {  # check_node NAME -> K
    [[ "${1:-}" =~ ^hf-node([0-9]+)$ ]] && (( BASH_REMATCH[1] >= 1 && BASH_REMATCH[1] <= NNODES )) \
        || { echo "multinode.sh: ${1:-}: not a node of this cluster (hf-node1..hf-node$NNODES)" >&2; exit 2; }
    pidfile_alive "$DIR/run/slurmctld.pid" || die "the cluster is not running (no slurmctld)"
    echo "${BASH_REMATCH[1]}"
}

cmd_kill_node() {
    local k n pids
    k="$(check_node "$1")" || exit $?
    n="$(node_name "$k")"
    pids="$(cat "$DIR/run/slurmd.$n.pid" 2>/dev/null) $(ip netns pids "$n" 2>/dev/null | tr '\n' ' ')"
    # shellcheck disable=SC2086
    kill -KILL $pids 2>/dev/null
    log "killed $n: slurmd and every process in its namespace (pids $pids)"
}

cmd_revive_node() {
    local k n t0=$SECONDS st
    k="$(check_node "$1")" || exit $?
    n="$(node_name "$k")"
    pidfile_alive "$DIR/run/slurmd.$n.pid" || start_slurmd "$k"
    while (( SECONDS - t0 < START_TIMEOUT )); do
        st="$(sinfo -h -n "$n" -o '%t' 2>/dev/null)"
        [[ "$st" == idle ]] && { log "$n is back (idle)"; return 0; }
        [[ "$st" =~ ^(down|drain|drng|inval|unk) ]] && scontrol update NodeName="$n" State=RESUME >/dev/null 2>&1
        sleep 0.5
    done
    die "$n not idle after ${START_TIMEOUT}s (state '$st')"
}

case "${1:-}" in
    start) take_lock; cmd_start ;;
    stop) take_lock; cmd_stop ;;
    status) cmd_status ;;
    kill-node) take_lock; cmd_kill_node "${2:-}" ;;
    revive-node) take_lock; cmd_revive_node "${2:-}" ;;
    *) echo "usage: $0 start|stop|status|kill-node NODE|revive-node NODE   (state dir: \$HESSFLOW_MULTINODE_DIR, default /tmp/hessflow-multinode)" >&2; exit 2 ;;
esac
