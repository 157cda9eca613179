// The zygote: a small Python program each worker runs (as PID 1 of its own PID
// namespace when the kernel allows). It is embedded here rather than shipped
// beside the binary so that a build directory, an installed binary and a test
// executable can never disagree about which runner they use.
//
// Why a fork server: Python start-up (~10 ms) plus namespace creation (a new
// network namespace alone can cost more) would dominate a 20 ms program. The
// zygote pays both once and then forks a child per program, which costs ~1 ms.
#include "sandbox/zygote.hpp"

namespace quanteval::sandbox::detail {

// Protocol on fd 3 (a socketpair end inherited from the C++ pool):
//   request: u32 header length, JSON header {limits}, u32 source length, source bytes
//   reply:   u32 header length, JSON header {outcome, ...}, stdout bytes, stderr bytes
// Lengths are little-endian. The first message the zygote sends is a "hello"
// header saying what it found about its own surroundings.
//
// Per program: a fresh nonce, a fresh working directory, three pipes (stdout,
// stderr, marker) and a fork. The child resets signals, closes every fd but
// 0/1/2 and the marker (now fd 3 -- this also closes the channel to C++, so a
// program can never talk to the pool), applies rlimits and runs the source in
// a fresh globals dict, exactly like openai/human-eval's exec(program, {}).
// Only when exec() returned in the original process does the runner write
// "<nonce> ok" on the marker pipe. A forged line would need the nonce.
const char* const kZygoteSource = R"PYTHON(
import os, sys, signal, json, struct, time, select, resource, random, errno, gc

CHANNEL_FD = 3
MARKER_FD = 3            # in the child, the marker pipe replaces the channel
SCRATCH = sys.argv[1]
EXTRA_SCRATCH = [p for p in sys.argv[2].split(':') if p]
PRELOAD = [m for m in sys.argv[3].split(',') if m]
IS_INIT = os.getpid() == 1
MARKER_LIMIT = 1 << 20
# Signals a program inside the namespace could send to PID 1. The kernel already
# drops default-action signals sent to a namespace init from inside; Python
# installs a SIGINT handler, so ignore explicitly. Children restore defaults.
GUARDED_SIGNALS = [getattr(signal, n) for n in (
    'SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2', 'SIGALRM',
    'SIGTSTP', 'SIGTTIN', 'SIGTTOU', 'SIGVTALRM', 'SIGPROF')]
for s in GUARDED_SIGNALS:
    signal.signal(s, signal.SIG_IGN)

# The script directory/cwd entry would let a program plant modules for later imports.
sys.path[:] = [p for p in sys.path if p not in ('', '.')]

# Not dumpable: a program running as the same uid cannot open /proc/1/mem or
# /proc/1/environ of the zygote (execve made it dumpable again).
try:
    import ctypes
    _prctl = ctypes.CDLL(None, use_errno=True).prctl
    DUMPABLE_OFF = _prctl(4, 0, 0, 0, 0) == 0   # PR_SET_DUMPABLE
except Exception:
    _prctl = None
    DUMPABLE_OFF = False

preloaded = []
for name in PRELOAD:
    try:
        __import__(name)
        preloaded.append(name)
    except Exception:
        pass
gc.collect()
gc.freeze()   # keep the pre-imported heap out of the children's collections (fewer copied pages)


def read_exact(n):
    parts = []
    while n:
        chunk = os.read(CHANNEL_FD, min(n, 1 << 20))
        if not chunk:
            raise EOFError
        parts.append(chunk)
        n -= len(chunk)
    return b''.join(parts)


def write_all(fd, data):
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def send(header, *blobs):
    raw = json.dumps(header).encode()
    write_all(CHANNEL_FD, struct.pack('<I', len(raw)) + raw + b''.join(blobs))


def receive():
    (n,) = struct.unpack('<I', read_exact(4))
    header = json.loads(read_exact(n))
    (m,) = struct.unpack('<I', read_exact(4))
    return header, read_exact(m)


def describe(exc):
    kind = type(exc)
    module = getattr(kind, '__module__', 'builtins')
    name = getattr(kind, '__qualname__', kind.__name__)
    full = name if module in ('builtins', '__main__', None) else f'{module}.{name}'
    try:
        message = str(exc)
    except BaseException:
        message = '<unprintable exception>'
    return full, message[:1000]


def child(source, limits, nonce, workdir, out_w, err_w, mark_w):
    # Everything the runner needs after exec() is bound to locals now, so a
    # program that replaces os._exit or os.write cannot disarm the runner.
    _write, _exit, _getpid, _dumps = os.write, os._exit, os.getpid, json.dumps
    try:
        os.setsid()
        for s in GUARDED_SIGNALS:
            signal.signal(s, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        os.dup2(out_w, 1)
        os.dup2(err_w, 2)
        os.dup2(mark_w, MARKER_FD)
        os.set_inheritable(MARKER_FD, False)   # exec'd helpers never see it
        os.closerange(MARKER_FD + 1, 1 << 16)
        os.chdir(workdir)
        os.environ['HOME'] = workdir
        os.environ['TMPDIR'] = workdir
        if _prctl is not None:
            _prctl(4, 1, 0, 0, 0)   # the program may read its own /proc/self again
        cpu = int(limits['cpu_seconds'] + 0.999)
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
        resource.setrlimit(resource.RLIMIT_AS, (limits['address_space_bytes'],) * 2)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limits['file_size_bytes'],) * 2)
        resource.setrlimit(resource.RLIMIT_NPROC, (limits['max_processes'],) * 2)
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        random.seed()
        text = source.decode('utf-8', 'replace')
        my_pid = _getpid()
    except BaseException as e:
        try:
            _write(MARKER_FD, (nonce + ' setup ' + _dumps(repr(e)) + '\n').encode())
        finally:
            _exit(70)
    report = None
    try:
        exec(compile(text, '<program>', 'exec'), {})
    except SystemExit as e:
        # sys.exit / raise SystemExit: the program chose to stop early. Never "completed".
        code = e.code
        if code is None:
            status = 0
        elif isinstance(code, int):
            status = code & 0xff
        else:
            status = 1
        flush_streams()
        _exit(status)
    except MemoryError:
        report = nonce + ' memory\n'
    except BaseException as e:
        try:
            kind, message = describe(e)
            report = nonce + ' exc ' + _dumps({'type': kind, 'message': message}) + '\n'
        except BaseException:
            report = nonce + ' exc {"type": "BaseException", "message": ""}\n'
    else:
        report = nonce + ' ok\n'
    flush_streams()
    # A process the program forked returns from exec() too; only the original reports.
    if _getpid() == my_pid:
        try:
            _write(MARKER_FD, report.encode())
        except BaseException:
            pass
    _exit(0)


def flush_streams():
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        try:
            stream.flush()
        except BaseException:
            pass


def list_children():
    me = str(os.getpid())
    found = []
    for entry in os.listdir('/proc'):
        if entry.isdigit():
            try:
                with open(f'/proc/{entry}/stat') as f:
                    fields = f.read().rsplit(')', 1)[1].split()
                if fields[1] == me:
                    found.append(int(entry))
            except OSError:
                pass
    return found


def kill_everything(program_pid):
    # As PID 1, kill(-1) reaches every other process of the namespace (setsid
    # daemons and double-forked orphans included) and orphans are re-parented
    # to us, so reaping until ECHILD proves the namespace is empty. Without a
    # PID namespace we are a child subreaper: kill the program's process group
    # (one signal, atomic against forks racing it) and then whatever group each
    # remaining child (a setsid escapee) leads, until none is left.
    statuses = {}
    if not IS_INIT and program_pid:
        try:
            os.kill(-program_pid, signal.SIGKILL)
        except OSError:
            pass
    while True:
        if IS_INIT:
            try:
                os.kill(-1, signal.SIGKILL)
            except OSError:
                pass
        else:
            for pid in list_children():
                for target in (-pid, pid):
                    try:
                        os.kill(target, signal.SIGKILL)
                    except OSError:
                        pass
        try:
            while True:
                pid, status = os.waitpid(-1, os.WNOHANG)
                if pid == 0:
                    break
                statuses[pid] = status
        except ChildProcessError:
            return statuses
        time.sleep(0.0005)


def make_writable(top):
    stack = [top]
    while stack:
        d = stack.pop()
        try:
            os.chmod(d, 0o700)
            with os.scandir(d) as it:
                for e in it:
                    if e.is_dir(follow_symlinks=False):
                        stack.append(e.path)
        except OSError:
            pass


def remove_tree(path):
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    import stat as _stat
    if not _stat.S_ISDIR(st.st_mode):
        os.unlink(path)
        return
    with os.scandir(path) as it:
        entries = list(it)
    for e in entries:
        remove_tree(e.path)
    os.rmdir(path)


def wipe(root):
    # Leaves root itself in place, empty. A program may have removed permissions
    # from its own directories, so on failure make everything writable and retry.
    for attempt in range(2):
        try:
            for entry in os.listdir(root):
                remove_tree(os.path.join(root, entry))
            return True
        except OSError:
            make_writable(root)
    return False


counter = 0


def run_one(limits, source):
    global counter
    counter += 1
    nonce = os.urandom(16).hex()
    workdir = os.path.join(SCRATCH, f'program-{counter}')
    os.mkdir(workdir, 0o700)
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    mark_r, mark_w = os.pipe()
    wall = float(limits['wall_seconds'])
    cap = int(limits['output_cap_bytes'])
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:
        try:
            child(source, limits, nonce, workdir, out_w, err_w, mark_w)
        finally:
            os._exit(70)
    for fd in (out_w, err_w, mark_w):
        os.close(fd)
    try:
        exit_fd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        exit_fd = None
    kept = {out_r: bytearray(), err_r: bytearray(), mark_r: bytearray()}
    limit = {out_r: cap, err_r: cap, mark_r: MARKER_LIMIT}
    truncated = False
    poller = select.poll()
    for fd in kept:
        poller.register(fd, select.POLLIN)
    if exit_fd is not None:
        poller.register(exit_fd, select.POLLIN)
    open_fds = set(kept)

    def drain(fd):
        nonlocal truncated
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            poller.unregister(fd)
            open_fds.discard(fd)
            return
        room = limit[fd] - len(kept[fd])
        if len(chunk) > room:
            if fd != mark_r:
                truncated = True
            chunk = chunk[:max(room, 0)]
        kept[fd] += chunk

    deadline = start + wall
    timed_out = False
    status = None
    while status is None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            timed_out = True
            break
        wait_ms = remaining * 1000 if exit_fd is not None else min(remaining * 1000, 5)
        for fd, _ in poller.poll(max(wait_ms, 1)):
            if fd == exit_fd:
                status = os.waitpid(pid, 0)[1]
            elif fd in open_fds:
                drain(fd)
        if exit_fd is None and status is None:
            done, st = os.waitpid(pid, os.WNOHANG)
            if done:
                status = st
    duration = time.monotonic() - start
    statuses = kill_everything(pid)
    if status is None:
        status = statuses.get(pid)
    # Every writer is dead now, so these reads end at EOF.
    while open_fds:
        for fd in list(open_fds):
            drain(fd)
    for fd in list(kept) + ([exit_fd] if exit_fd is not None else []):
        os.close(fd)
    recycle = False
    for root in [SCRATCH] + EXTRA_SCRATCH:
        if not wipe(root):
            recycle = True

    verdict = None
    for line in bytes(kept[mark_r]).split(b'\n'):
        if line.startswith(nonce.encode() + b' '):
            verdict = line[len(nonce) + 1:].decode('utf-8', 'replace')
            break
    reply = {'outcome': '', 'exception_type': '', 'exception_message': '', 'exit_code': 0,
             'signal': 0, 'duration': duration, 'truncated': truncated, 'recycle': recycle,
             'detail': ''}
    if verdict == 'ok':
        reply['outcome'] = 'completed'
    elif verdict == 'memory':
        reply.update(outcome='memory', exception_type='MemoryError')
    elif verdict is not None and verdict.startswith('exc '):
        info = json.loads(verdict[4:])
        kind = 'memory' if info['type'] == 'MemoryError' else 'exception'
        reply.update(outcome=kind, exception_type=info['type'], exception_message=info['message'])
    elif verdict is not None and verdict.startswith('setup '):
        reply.update(outcome='sandbox_error', detail='runner setup failed: ' + verdict[6:], recycle=True)
    elif timed_out:
        reply['outcome'] = 'timeout'
    elif status is not None and os.WIFEXITED(status):
        reply.update(outcome='exited', exit_code=os.WEXITSTATUS(status))
    elif status is not None and os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        # SIGXCPU: RLIMIT_CPU ran out, which is a time limit.
        reply.update(outcome='timeout' if sig == signal.SIGXCPU else 'signaled', signal=sig)
    else:
        reply.update(outcome='sandbox_error', detail='lost the program status', recycle=True)
    out, err = bytes(kept[out_r]), bytes(kept[err_r])
    reply['stdout_len'] = len(out)
    reply['stderr_len'] = len(err)
    send(reply, out, err)


def count_visible_processes():
    try:
        return sum(1 for e in os.listdir('/proc') if e.isdigit())
    except OSError:
        return -1


def network_interfaces():
    try:
        import socket
        return [name for _, name in socket.if_nameindex()]
    except Exception:
        return []


if not IS_INIT:
    try:
        _prctl(36, 1, 0, 0, 0)   # PR_SET_CHILD_SUBREAPER: orphans come back to us
    except Exception:
        pass

send({'hello': 1, 'pid': os.getpid(), 'uid': os.getuid(), 'gid': os.getgid(),
      'pid1': IS_INIT, 'dumpable_off': DUMPABLE_OFF, 'python': sys.version.split()[0],
      'preloaded': preloaded, 'visible_processes': count_visible_processes(),
      'interfaces': network_interfaces()})
while True:
    try:
        header, source = receive()
    except EOFError:
        os._exit(0)   # the pool is gone (or closed us): the namespace dies with us
    try:
        run_one(header, source)
    except Exception as e:
        try:
            kill_everything(None)
        except Exception:
            pass
        import traceback
        send({'outcome': 'sandbox_error', 'detail': 'zygote: ' + ''.join(
            traceback.format_exception_only(type(e), e)).strip(), 'recycle': True,
            'stdout_len': 0, 'stderr_len': 0})
)PYTHON";

}  // namespace quanteval::sandbox::detail
