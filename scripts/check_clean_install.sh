#!/bin/bash
# Proves that the README's set-up works on a clean Debian 12: debootstraps a minimal bookworm root
# (--variant=minbase), copies this checkout into it (git-tracked + untracked-not-ignored files, so
# no build dirs or node_modules), gives it the machine's apt sources, DNS, TLS trust store and npm
# registry settings, mounts /proc, /sys and a private /dev (tmpfs with the usual nodes, devpts,
# a /dev/shm tmpfs), and runs the README's two set-up commands verbatim in a chroot:
#     scripts/setup.sh
#     scripts/test.sh
# It prints the time of each phase and the test summary, keeps a full log, and exits non-zero if
# any step (or any test) fails.
#
# Usage: scripts/check_clean_install.sh [--root DIR] [--keep] [--reuse-base] [--mirror URL] [--log FILE]
#        scripts/check_clean_install.sh --can-run    # exit 0 if this machine can run it, else say why
#   --root DIR     the chroot (default $NE_CLEAN_ROOT or /var/tmp/ne-clean-root; never inside the checkout)
#   --keep         keep the root at the end, also on success (it is always unmounted)
#   --reuse-base   development only: reuse/create a cached tarball of the debootstrapped base
#                  (DIR.base.tar) instead of debootstrapping afresh; the default is a fresh root
#   --mirror URL   Debian mirror for debootstrap (default: the URL this machine's apt uses for
#                  bookworm main)
#   --log FILE     full log (default DIR.log, next to the root, so it survives the root's deletion)
# The root is deleted at the end on success; on failure it is kept (unmounted) for inspection and
# deleted by the next run. Needs root (debootstrap, mount, chroot).
#
# Safety: every mount is made under DIR and undone by an EXIT/INT/TERM trap; before an old root is
# deleted everything still mounted under it is unmounted (deepest first, lazily if busy), deletion
# is refused while anything is still mounted there, and it uses rm -rf --one-file-system. /dev in
# the root is a private tmpfs, never a bind of the machine's /dev.
set -euo pipefail

SRC=$(cd "$(dirname "$0")/.." && pwd)
ROOT=${NE_CLEAN_ROOT:-/var/tmp/ne-clean-root}
KEEP=0
REUSE=0
MIRROR=""
LOG=""
CAN_RUN=0
while [ $# -gt 0 ]; do
  case "$1" in
    --root) ROOT="$2"; shift ;;
    --keep) KEEP=1 ;;
    --reuse-base) REUSE=1 ;;
    --mirror) MIRROR="$2"; shift ;;
    --log) LOG="$2"; shift ;;
    --can-run) CAN_RUN=1 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
  shift
done

# The README's set-up commands, run verbatim. They must match the first ```sh block of the README's
# "## Set-up" section; readme_commands below checks that and the script fails if they differ.
SETUP_CMDS=("scripts/setup.sh" "scripts/test.sh")

die() { echo "check_clean_install: error: $*" >&2; exit 1; }

# --- can this machine run it at all? -----------------------------------------------------------
can_run() {
  [ "$(id -u)" -eq 0 ] || { echo "needs root (debootstrap, mount, chroot)"; return 1; }
  command -v chroot >/dev/null || { echo "no chroot"; return 1; }
  command -v debootstrap >/dev/null || command -v apt-get >/dev/null ||
    { echo "no debootstrap and no apt-get to install it"; return 1; }
  local t; t=$(mktemp -d /var/tmp/ne-mount-probe.XXXXXX) || { echo "cannot make a temp dir"; return 1; }
  if ! mount -t tmpfs -o size=1m ne-probe "$t" 2>/dev/null; then
    rmdir "$t"; echo "cannot mount (no CAP_SYS_ADMIN?)"; return 1
  fi
  umount "$t"; rmdir "$t"
  return 0
}
if [ "$CAN_RUN" = 1 ]; then can_run; exit $?; fi
why=$(can_run) || die "cannot run here: $why"

# --- the root path: refuse anything that could be a system or user directory -------------------
[ -n "$ROOT" ] || die "empty --root"
[ "$ROOT" != / ] || die "--root / refused"
case "$ROOT" in /*) ;; *) ROOT="$PWD/$ROOT" ;; esac
ROOT=$(realpath -m -- "$ROOT")
[[ "$ROOT" =~ ^/[A-Za-z0-9._+/-]+$ ]] || die "--root '$ROOT': only [A-Za-z0-9._+-/] allowed"
[ "${#ROOT}" -ge 8 ] || die "--root '$ROOT' is too short"
[ "$(tr -cd / <<<"$ROOT" | wc -c)" -ge 2 ] || die "--root '$ROOT' must be at least two levels deep"
for sys in / /bin /boot /dev /etc /home /lib /lib32 /lib64 /libx32 /media /mnt /opt /proc /root \
           /run /sbin /srv /sys /tmp /usr /usr/local /usr/lib /usr/share /var /var/tmp /var/lib \
           /var/cache /var/log /work "$HOME"; do
  [ "$ROOT" != "$(realpath -m -- "$sys")" ] || die "--root '$ROOT' is a system directory"
done
case "$SRC/" in "$ROOT"/*) die "--root '$ROOT' contains the checkout $SRC" ;; esac
case "$ROOT/" in "$SRC"/*) die "--root '$ROOT' is inside the checkout (git and the copy would recurse)" ;; esac
MARK="$ROOT/.ne-clean-root"   # written into every root we make; we delete only roots that have it
BASE_TAR="$ROOT.base.tar"
LOG=${LOG:-$ROOT.log}
WORK=""

mkdir -p "$(dirname "$ROOT")" "$(dirname "$LOG")"
exec 9>"$ROOT.lock"
flock -n 9 || die "another check_clean_install.sh is using $ROOT ($ROOT.lock)"
: >"$LOG"
exec > >(tee -a "$LOG") 2>&1

# --- mounts and deletion ------------------------------------------------------------------------
mounts_under() {   # mount points at or under $1, deepest first
  awk -v r="$1" '$2 == r || index($2, r "/") == 1 { print length($2) "\t" $2 }' /proc/mounts |
    sort -rn | cut -f2- | uniq
}
kill_root_procs() {   # $1 signal; processes whose root directory is $ROOT (only this script's can be)
  local p r
  for p in /proc/[0-9]*; do
    r=$(readlink "$p/root" 2>/dev/null) || continue
    [ "$r" = "$ROOT" ] || continue
    kill "-${1:-TERM}" "${p#/proc/}" 2>/dev/null || true
  done
}
unmount_all() {
  local m round
  for round in 1 2 3; do
    [ -n "$(mounts_under "$ROOT")" ] || return 0
    [ "$round" = 1 ] || { kill_root_procs "$([ "$round" = 2 ] && echo TERM || echo KILL)"; sleep 1; }
    while IFS= read -r m; do
      [ -n "$m" ] || continue
      umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || echo "warning: cannot unmount $m" >&2
    done < <(mounts_under "$ROOT")
  done
  [ -z "$(mounts_under "$ROOT")" ]
}
delete_root() {
  [ -e "$ROOT" ] || return 0
  unmount_all || { echo "still mounted under $ROOT:" >&2; mounts_under "$ROOT" >&2; die "refusing to delete $ROOT"; }
  [ -z "$(mounts_under "$ROOT")" ] || die "refusing to delete $ROOT: something is mounted under it"
  if [ -e "$MARK" ] || [ -z "$(ls -A "$ROOT" 2>/dev/null)" ]; then
    rm -rf --one-file-system -- "$ROOT"
  else
    die "refusing to delete $ROOT: it exists but was not made by this script (no $MARK)"
  fi
  [ ! -e "$ROOT" ] || die "could not delete all of $ROOT"
}
STATUS=1
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  set +e
  kill_root_procs TERM   # what is still running in the chroot (after INT/TERM)
  if ! unmount_all; then
    echo "ERROR: still mounted under $ROOT (not deleting it):" >&2; mounts_under "$ROOT" >&2
  elif [ "$STATUS" = 0 ] && [ "$KEEP" = 0 ]; then
    echo "== deleting $ROOT"; delete_root
  elif [ -e "$ROOT" ]; then
    echo "== kept $ROOT (unmounted)$([ "$STATUS" = 0 ] || echo '; the next run deletes it')"
  fi
  [ -z "${WORK:-}" ] || rm -rf -- "$WORK"
  echo "== log: $LOG"
  exit "$rc"
}
trap cleanup EXIT
trap 'echo "== interrupted"; exit 130' INT
trap 'echo "== terminated"; exit 143' TERM
WORK=$(mktemp -d /var/tmp/ne-clean-work.XXXXXX)

T0=$(date +%s)
declare -a PHASES=()
phase_start() { PH_NAME=$1; PH_T=$(date +%s); echo; echo "== [$(date +%T)] $1"; }
phase_end() {
  local d=$(( $(date +%s) - PH_T ))
  PHASES+=("$(printf '%-12s %4dm%02ds' "$PH_NAME" $((d / 60)) $((d % 60)))")
  echo "== $PH_NAME took $((d / 60))m$((d % 60))s"
}

# --- the README's set-up commands ---------------------------------------------------------------
readme_commands() {   # commands of the first ```sh block under "## Set-up", comments stripped
  awk '/^## /{ insec = ($0 ~ /^## Set-up/) } insec && /^```sh/{ inb = 1; next }
       inb && /^```/{ exit } inb { sub(/#.*/, ""); gsub(/^[ \t]+|[ \t]+$/, ""); if ($0 != "") print }' \
    "$SRC/README.md"
}
mapfile -t README_CMDS < <(readme_commands)
if [ "${README_CMDS[*]:-}" != "${SETUP_CMDS[*]}" ]; then
  echo "README set-up block says: ${README_CMDS[*]:-(nothing found)}" >&2
  die "README.md's set-up commands no longer match this script's (${SETUP_CMDS[*]}); update both"
fi

# --- the mirror: what this machine's apt uses for bookworm main ---------------------------------
find_mirror() {
  local f
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    awk '$1 == "deb" { i = 2; if ($2 ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
                       url = $i; suite = $(i + 1); main = 0
                       for (j = i + 2; j <= NF; j++) if ($j == "main") main = 1
                       if (suite == "bookworm" && main) { print url; exit } }' "$f"
  done
  for f in /etc/apt/sources.list.d/*.sources; do   # deb822 stanzas
    [ -f "$f" ] || continue
    awk 'function flush() { if (types ~ /(^| )deb( |$)/ && suites ~ /(^| )bookworm( |$)/ &&
                                comps ~ /(^| )main( |$)/ && enabled !~ /^[Nn]o/ && uris != "") {
                              split(uris, u, " "); print u[1]; found = 1 }
                            types = suites = comps = uris = enabled = "" }
         /^[ \t]*#/ { next }
         /^[ \t]*$/ { flush(); if (found) exit; next }
         { key = tolower($1); sub(/:$/, "", key); $1 = ""; sub(/^ +/, "")
           if (key == "types") types = $0; else if (key == "suites") suites = $0
           else if (key == "components") comps = $0; else if (key == "uris") uris = $0
           else if (key == "enabled") enabled = $0 }
         END { if (!found) flush() }' "$f"
  done
}
if [ -z "$MIRROR" ]; then
  MIRROR=$(find_mirror | head -n1)
  [ -n "$MIRROR" ] || die "no 'bookworm main' source in /etc/apt/sources.list{,.d}; give --mirror URL"
fi

REV="$(git -C "$SRC" rev-parse --short HEAD 2>/dev/null || echo '?')$(
  [ -z "$(git -C "$SRC" status --porcelain 2>/dev/null)" ] || echo ', with uncommitted changes')"
echo "== check_clean_install: $SRC ($REV)"
echo "   root $ROOT, mirror $MIRROR, log $LOG, keep=$KEEP reuse-base=$REUSE"
echo "   commands (from README.md): ${SETUP_CMDS[*]}"

# --- phase 1: a fresh minbase root --------------------------------------------------------------
phase_start debootstrap
if [ -e "$ROOT" ]; then echo "deleting the old $ROOT"; delete_root; fi
command -v debootstrap >/dev/null || {
  echo "installing debootstrap"
  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap
}
mkdir -p "$ROOT"
: >"$MARK"
if [ "$REUSE" = 1 ] && [ -s "$BASE_TAR" ]; then
  echo "reusing $BASE_TAR (--reuse-base; not a fresh debootstrap)"
  tar -C "$ROOT" -xpf "$BASE_TAR"
else
  echo "+ debootstrap --variant=minbase bookworm $ROOT $MIRROR"
  debootstrap --variant=minbase bookworm "$ROOT" "$MIRROR"
  if [ "$REUSE" = 1 ]; then
    echo "saving $BASE_TAR for --reuse-base"
    tar -C "$ROOT" --one-file-system -cpf "$BASE_TAR.tmp" . && mv "$BASE_TAR.tmp" "$BASE_TAR"
  fi
fi
: >"$MARK"
phase_end

# --- phase 2: the checkout and the machine's network settings -----------------------------------
phase_start copy
mkdir -p "$ROOT/src"
# git-tracked and untracked-not-ignored files (no build*/ nor node_modules); skip deleted ones
git -C "$SRC" ls-files -co --exclude-standard -z |
  (cd "$SRC" && while IFS= read -r -d '' f; do [ -e "$f" ] || [ -L "$f" ] && printf '%s\0' "$f"; done) |
  tar -C "$SRC" --null -T - -cf - | tar -C "$ROOT/src" -xpf -
echo "copied $(find "$ROOT/src" -type f | wc -l) files ($(du -sh "$ROOT/src" | cut -f1)) to $ROOT/src"

# apt: sources and whatever apt.conf.d settings shape how the mirror is reached (Acquire::*:
# proxies, auth, Check-Valid-Until, ...), auth.conf, and keyrings named by Signed-By
rm -f "$ROOT/etc/apt/sources.list"
[ ! -f /etc/apt/sources.list ] || cp /etc/apt/sources.list "$ROOT/etc/apt/sources.list"
mkdir -p "$ROOT/etc/apt/sources.list.d" "$ROOT/etc/apt/apt.conf.d"
for f in /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
  [ -f "$f" ] && cp "$f" "$ROOT/etc/apt/sources.list.d/"
done
for f in /etc/apt/apt.conf /etc/apt/apt.conf.d/*; do
  [ -f "$f" ] && grep -qi '^[^/#]*Acquire' "$f" && cp "$f" "$ROOT$f" && echo "apt conf: $f"
done
[ ! -e /etc/apt/auth.conf ] || cp -p /etc/apt/auth.conf "$ROOT/etc/apt/"
[ ! -d /etc/apt/auth.conf.d ] || cp -a /etc/apt/auth.conf.d "$ROOT/etc/apt/"
for k in $(cat /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null |
           grep -oiE '(signed-by(:|=))[ ]*/[^] ]+' | sed -E 's/^[^/]*//' | sort -u); do
  if [ -f "$k" ] && [ ! -e "$ROOT$k" ]; then mkdir -p "$(dirname "$ROOT$k")"; cp "$k" "$ROOT$k"; fi
done
# DNS, TLS trust store (a clean root has no ca-certificates until setup.sh installs it; the
# machine's local CAs, e.g. an egress proxy's, stay in /usr/local/share/ca-certificates for it)
cp -L /etc/resolv.conf "$ROOT/etc/resolv.conf"
cp -L /etc/hosts "$ROOT/etc/hosts"
mkdir -p "$ROOT/etc/ssl" "$ROOT/usr/local/share"
rm -rf "$ROOT/etc/ssl/certs"
cp -a /etc/ssl/certs "$ROOT/etc/ssl/certs"
[ ! -d /usr/local/share/ca-certificates ] ||
  { rm -rf "$ROOT/usr/local/share/ca-certificates"; cp -a /usr/local/share/ca-certificates "$ROOT/usr/local/share/"; }
# Symlinks in /etc/ssl/certs point into /usr/share/ca-certificates, absent until ca-certificates is
# installed; the bundle file itself is a regular file, so npm/curl can use it meanwhile.
# npm: the registry (and proxy/TLS settings) this machine's npm uses, written to the root's
# ~/.npmrc if they are not npm's defaults
NPMRC="$ROOT/root/.npmrc"
mkdir -p "$ROOT/root"
: >"$NPMRC"
if command -v npm >/dev/null; then
  for key in registry proxy https-proxy noproxy cafile strict-ssl; do
    val=$(npm config get "$key" 2>/dev/null || true)
    case "$key=$val" in
      registry=https://registry.npmjs.org/|registry=|proxy=null|proxy=|https-proxy=null|https-proxy=|noproxy=|cafile=null|cafile=|cafile=undefined|strict-ssl=true|strict-ssl=) ;;
      cafile=*) [ -f "$ROOT$val" ] || cp "$val" "$ROOT$val"; echo "cafile=$val" >>"$NPMRC" ;;
      *) echo "$key=$val" >>"$NPMRC" ;;
    esac
  done
fi
if [ -s "$NPMRC" ]; then echo "npm settings for the root ($NPMRC):"; sed 's/^/  /' "$NPMRC"; else rm -f "$NPMRC"; fi
phase_end

# --- mounts: /proc, /sys, a private /dev with /dev/pts and /dev/shm ----------------------------
mount -t proc proc "$ROOT/proc"
mount -t sysfs sysfs "$ROOT/sys" 2>/dev/null || mount --bind -o ro /sys "$ROOT/sys"
mount -t tmpfs -o mode=755,size=16m ne-clean-dev "$ROOT/dev"
for n in "null c 1 3" "zero c 1 5" "full c 1 7" "random c 1 8" "urandom c 1 9" "tty c 5 0"; do
  set -- $n
  mknod -m 666 "$ROOT/dev/$1" "$2" "$3" "$4" 2>/dev/null ||
    { : >"$ROOT/dev/$1"; mount --bind "/dev/$1" "$ROOT/dev/$1"; }
done
ln -s /proc/self/fd "$ROOT/dev/fd"
ln -s /proc/self/fd/0 "$ROOT/dev/stdin"
ln -s /proc/self/fd/1 "$ROOT/dev/stdout"
ln -s /proc/self/fd/2 "$ROOT/dev/stderr"
mkdir -p "$ROOT/dev/pts" "$ROOT/dev/shm"
if mount -t devpts -o newinstance,ptmxmode=0666,mode=620 devpts "$ROOT/dev/pts" 2>/dev/null; then
  ln -s pts/ptmx "$ROOT/dev/ptmx"
fi
mount -t tmpfs -o mode=1777 ne-clean-shm "$ROOT/dev/shm"
echo "mounted under $ROOT:"; mounts_under "$ROOT" | sort | sed 's/^/  /'

# --- phases 3 and 4: the README's commands, verbatim, as root in the chroot ---------------------
in_root() {   # a clean login-like environment: no host variables leak in except proxies
  local envs=(HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
              TERM=dumb LANG=C.UTF-8 USER=root LOGNAME=root SHELL=/bin/bash)
  local v
  for v in http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY; do
    [ -z "${!v:-}" ] || envs+=("$v=${!v}")
  done
  chroot "$ROOT" /usr/bin/env -i "${envs[@]}" /bin/bash -c "cd /src && $1" </dev/null
}
RC=0
for cmd in "${SETUP_CMDS[@]}"; do
  name=$(basename "$cmd")
  phase_start "$name"
  echo "+ chroot $ROOT: cd /src && $cmd"
  # in the background and waited for, so that INT/TERM run the trap at once (it ends what still
  # runs in the root, then unmounts)
  ( in_root "$cmd" 2>&1 | tee "$WORK/$name.out"; exit "${PIPESTATUS[0]}" ) &
  rc=0
  wait "$!" || rc=$?
  phase_end
  if [ "$rc" -ne 0 ]; then
    echo "== $cmd FAILED (exit $rc)"; RC=$rc
    break
  fi
done

# --- extra check, not a README command: the default weight cache (/dev/shm/neural_engine) works ---
# (the tests give the engine their own NE_CACHE_DIR, so nothing above uses the default place)
SHM="not run (no build)"
if [ -x "$ROOT/src/build/bin/neural_engine" ] && [ -f "$ROOT/src/tests/data/hand_ir/conf.yaml" ]; then
  phase_start shm-cache
  H=tests/data/hand_ir
  shm_cmd="WEIGHT_SHARING=1 build/bin/neural_engine --config $H/conf.yaml --weight $H/model.bin"
  shm_cmd+=" --input input_ids=$H/input_ids.npy,position_ids=$H/position_ids.npy --iterations 1 --w 0"
  echo "+ chroot $ROOT: cd /src && $shm_cmd"
  ( in_root "$shm_cmd" 2>&1 ) &
  rc=0
  wait "$!" || rc=$?
  n=$(find "$ROOT/dev/shm/neural_engine" -name '*.pack' 2>/dev/null | wc -l)
  if [ "$rc" -eq 0 ] && [ "$n" -gt 0 ]; then
    SHM="ok: WEIGHT_SHARING=1 run wrote $n .pack file(s) to /dev/shm/neural_engine"
  else
    SHM="FAILED: exit $rc, $n .pack file(s) in /dev/shm/neural_engine"
    [ "$RC" -ne 0 ] || RC=1
  fi
  echo "== $SHM"
  phase_end
fi

# --- summary ------------------------------------------------------------------------------------
echo
echo "================ clean-install summary ================"
echo "source   $SRC ($REV)"
echo "root     $ROOT (debootstrap --variant=minbase bookworm, mirror $MIRROR$([ "$REUSE" = 1 ] && echo ', --reuse-base'))"
echo "ran      ${SETUP_CMDS[*]} (in the chroot, from /src)"
for p in "${PHASES[@]}"; do echo "phase    $p"; done
d=$(( $(date +%s) - T0 )); echo "total    $((d / 60))m$((d % 60))s"
if [ -f "$WORK/test.sh.out" ]; then
  echo "tests:"
  # per ctest run (test.sh runs the suite natively, then again under capped ISA tiers): the tier,
  # ctest's summary line and the tests that failed; then test.sh's own tier summary
  grep -E '^== tier |^[0-9]+% tests passed, .* failed out of|^[[:space:]]+[0-9]+ - .*\((Failed|Timeout|SEGFAULT|Subprocess|Not Run|Exception)' \
    "$WORK/test.sh.out" | sed -E 's/  # GetParam\(\) = .*(\([^)]*\))$/ \1/; s/^/  /' || true
  sed -n '/^== ISA tiers/,/^tiers:/p' "$WORK/test.sh.out" | sed 's/^/  /'
fi
echo "shm      $SHM"
if [ "$RC" -eq 0 ]; then echo "RESULT   PASS"; STATUS=0; else echo "RESULT   FAIL (exit $RC)"; fi
exit "$RC"
