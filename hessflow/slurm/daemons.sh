# daemons.sh -- shell functions shared by the test-cluster scripts (multinode.sh; cluster.sh can
# source it too). Source it, do not run it:   source "$(dirname "${BASH_SOURCE[0]}")/daemons.sh"
# The caller sets DIR (its state directory). Nothing here starts or stops a daemon by name: only
# by the PID files given.

log() { echo "$(basename "$0"): $*" >&2; }
die() { log "$*"; exit 1; }

pid_alive() {  # pid_alive PID -> 0 if the process exists and is not a zombie
    local pid="$1" st
    [[ -n "$pid" && -d "/proc/$pid" ]] || return 1
    st="$(awk '/^State:/{print $2}' "/proc/$pid/status" 2>/dev/null)"
    [[ -n "$st" && "$st" != Z && "$st" != X ]]
}

pidfile_alive() { [[ -f "$1" ]] && pid_alive "$(cat "$1" 2>/dev/null)"; }

kill_pidfile() {  # kill_pidfile FILE NAME: TERM, wait up to 10 s, then KILL; remove FILE
    local f="$1" name="$2" pid
    [[ -f "$f" ]] || return 0
    pid="$(cat "$f" 2>/dev/null)"
    if pid_alive "$pid"; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 100); do pid_alive "$pid" || break; sleep 0.1; done
        if pid_alive "$pid"; then kill -KILL "$pid" 2>/dev/null || true; sleep 0.2; fi
        pid_alive "$pid" && log "$name (pid $pid) did not exit" || log "stopped $name (pid $pid)"
    fi
    rm -f "$f"
}

ensure_munge_key() {  # /etc/munge/munge.key, created (munge-owned, 0400) when missing or empty
    [[ -s /etc/munge/munge.key ]] && return 0
    mkdir -p /etc/munge
    if command -v mungekey >/dev/null; then mungekey --create --keyfile=/etc/munge/munge.key --force >/dev/null
    else dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none; fi
    chown munge:munge /etc/munge /etc/munge/munge.key
    chmod 700 /etc/munge; chmod 400 /etc/munge/munge.key
}

common_conf() {  # the slurm.conf lines every test cluster shares: root daemons, munge, no cgroups, no accounting
    cat <<'EOF'
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
# start batch jobs at submit time (default: up to 3 s later)
SchedulerParameters=batch_sched_delay=0
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmdParameters=config_overrides
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
InactiveLimit=0
KillWait=5
MinJobAge=300
EOF
}

cancel_all_jobs() {  # cancel_all_jobs [TRIES]: scancel every job of the cluster SLURM_CONF names; wait TRIES x 0.2 s (50)
    local jobs
    jobs="$(squeue -h -o %A 2>/dev/null | tr '\n' ' ')"
    [[ -n "${jobs// /}" ]] || return 0
    log "cancelling jobs: $jobs"
    # shellcheck disable=SC2086
    scancel $jobs 2>/dev/null || true
    for _ in $(seq "${1:-50}"); do [[ -z "$(squeue -h -o %A 2>/dev/null)" ]] && break; sleep 0.2; done
}

take_lock() {  # start and stop take turns on $DIR.lock (fd 9: start daemons with 9>&-)
    command -v flock >/dev/null || return 0
    mkdir -p "$(dirname "$DIR")" 2>/dev/null
    # another user's lock file (e.g. root's, in sticky /tmp) can still be opened read-only
    { exec 9>>"$DIR.lock"; } 2>/dev/null || { exec 9<"$DIR.lock"; } 2>/dev/null \
        || die "cannot open the lock file $DIR.lock"
    flock -w 600 9 || die "another $(basename "$0") start/stop has held $DIR.lock for 600 s"
}
