// The zygote: a small Python program each worker runs (as PID 1 of its own PID
// namespace when the kernel allows). It is embedded here rather than shipped
// beside the binary so that a build directory, an installed binary and a test
// executable can never disagree about which runner they use.
//
// Why a fork server: Python start-up (~10 ms) plus namespace creation (a new
// network namespace alone can cost more) would dominate a 20 ms program. The
// zygote pays both once and then forks a child per program, which costs ~1 ms.
//
// The zygote never holds a program's data. Every fork copies the zygote's
// memory, freed blocks included, so whatever the zygote once read -- a source,
// an output, an exception message, a file name -- a later program could find
// in its own copy. So the pool hands the zygote file descriptors instead: the
// source in a memfd, and the write ends of the stdout, stderr and marker pipes,
// whose read ends only the pool holds. The zygote forks, closes them, waits,
// kills, and reports the wait status; the scratch areas are wiped by a forked
// cleaner whose memory dies with it.
#include "sandbox/zygote.hpp"

namespace quanteval::sandbox::detail {

// Protocol on fd 3 (a socketpair end inherited from the C++ pool):
//   request: u32 header length + JSON header {nonce, limits}, sent with
//            SCM_RIGHTS [source memfd, stdout, stderr, marker(, cgroup.procs)]
//   replies: u32 length + JSON {status, timed_out, duration} (or {error}) once
//            every process of the program is gone, then u32 length + JSON
//            {ready} (or {ready: false, why}) once the scratch areas are clean.
//   While a program runs the pool may send {stop}: its memory cgroup's OOM
//   killer struck, and the rest of the tree is killed at once.
// Lengths are little-endian. The first message the zygote sends is a "hello"
// header saying what it found about its own surroundings.
//
// Per program: a fork. The child joins the program's memory cgroup, puts the
// marker pipe on fd 3 (closing the channel to C++: a program can never talk to
// the pool), stdout/stderr on 1/2, reads the source, closes every other fd,
// applies rlimits, writes "<nonce> start" on the marker and runs the source in
// a fresh globals dict, exactly like openai/human-eval's exec(program, {}).
// Only when exec() returned in the original process does it write "<nonce> ok"
// ("<nonce> exc <hex type> <hex message>" when it raised). A forged line would
// need the nonce; a setup failure can only be reported before "start".
const char* const kZygoteSource = R"PYTHON(
import os, sys, signal, json, struct, time, resource, random, errno, gc, socket, array, select

CHANNEL_FD = 3
MARKER_FD = 3            # in the child, the marker pipe replaces the channel
SCRATCH = sys.argv[1]
EXTRA_SCRATCH = [p for p in sys.argv[2].split(':') if p]
PRELOAD = [m for m in sys.argv[3].split(',') if m]
SWEEP_SYSV = sys.argv[4] == '1'
WORKDIR = os.path.join(SCRATCH, 'program')
IS_INIT = os.getpid() == 1
# The cleaner removes at most this many entries (files, directories, SysV
# objects) after a program; beyond that the worker is replaced, which empties
# every tmpfs and the IPC namespace at once. Each scratch tmpfs also has an
# nr_inodes limit, so a program can never make cleaning unbounded.
CLEAN_BUDGET = 4096
CLEAN_SECONDS = 20.0
# The scratch roots' times after cleaning: a fixed value, so that neither the
# times nor their change carry anything from one program to the next.
QUIET_TIME_NS = 946684800 * 10**9   # 2000-01-01
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
    _libc = ctypes.CDLL(None, use_errno=True)
    _prctl = _libc.prctl
    DUMPABLE_OFF = _prctl(4, 0, 0, 0, 0) == 0   # PR_SET_DUMPABLE
except Exception:
    _libc = None
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

# Bound now: a program may replace os._exit, os.write, builtins... in its own
# process, which is also where the runner's code runs after exec() returns.
_hard_exit, _raw_write, _getpid = os._exit, os.write, os.getpid
channel = socket.socket(fileno=CHANNEL_FD)


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


def send(header):
    raw = json.dumps(header).encode()
    write_all(CHANNEL_FD, struct.pack('<I', len(raw)) + raw)


def receive():
    head, ancillary, _, _ = channel.recvmsg(4, socket.CMSG_SPACE(16 * 4), socket.MSG_CMSG_CLOEXEC)
    if not head:
        raise EOFError
    fds = []
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            numbers = array.array('i')
            numbers.frombytes(data[:len(data) - len(data) % numbers.itemsize])
            fds += list(numbers)
    if len(head) < 4:
        head += read_exact(4 - len(head))
    (n,) = struct.unpack('<I', head)
    return json.loads(read_exact(n)), fds


def describe(exc, _str=str, _type=type, _getattr=getattr, _isinstance=isinstance, _str_of=str.__str__,
             _cut=str.__getitem__):
    # The type's name and str(exc), as exact str objects of bounded length,
    # whatever the exception object does (a __str__ that raises or returns
    # something else, a metaclass that answers non-strings, ...).
    def text(value, limit):
        try:
            if _type(value) is not _str:
                value = _str(value)
            if not _isinstance(value, _str):
                return '<unprintable>'
            return _cut(_str_of(value), slice(0, limit))
        except BaseException:
            return '<unprintable>'
    try:
        kind = _type(exc)
        module = text(_getattr(kind, '__module__', 'builtins'), 200)
        name = text(_getattr(kind, '__qualname__', '?'), 200)
    except BaseException:
        module, name = 'builtins', '<unprintable>'
    full = name if module in ('builtins', '__main__') else module + '.' + name
    return full, text(exc, 4000)


def set_limit(kind, soft, hard=None):
    # Never above the hard limit the pool was started with: raising it needs a
    # privilege the worker does not have, and a stricter host limit stays.
    hard = soft if hard is None else hard
    _, inherited = resource.getrlimit(kind)
    if inherited != resource.RLIM_INFINITY:
        soft, hard = min(soft, inherited), min(hard, inherited)
    resource.setrlimit(kind, (soft, hard))


def child(header, fds):
    # Everything the runner needs after exec() is bound to locals now.
    _write, _exit, _encode, _hex = _raw_write, _hard_exit, str.encode, bytes.hex
    nonce = header['nonce']
    source_fd, out_w, err_w, mark_w = fds[0], fds[1], fds[2], fds[3]
    group_fd = fds[4] if len(fds) > 4 else None
    marker_ready = False
    try:
        # First the marker on fd 3: until then fd 3 is the channel to the pool.
        os.dup2(mark_w, MARKER_FD)
        os.set_inheritable(MARKER_FD, False)   # exec'd helpers never see it
        marker_ready = True
        if group_fd is not None:
            os.write(group_fd, b'0')           # join the program's memory cgroup
        os.setsid()
        for s in GUARDED_SIGNALS:
            signal.signal(s, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        os.dup2(out_w, 1)
        os.dup2(err_w, 2)
        parts, offset = [], 0
        while True:
            chunk = os.pread(source_fd, 1 << 20, offset)
            if not chunk:
                break
            parts.append(chunk)
            offset += len(chunk)
        source = b''.join(parts)
        del parts
        os.closerange(MARKER_FD + 1, 1 << 16)
        os.chdir(WORKDIR)
        os.environ['HOME'] = WORKDIR
        os.environ['TMPDIR'] = WORKDIR
        if _prctl is not None:
            _prctl(4, 1, 0, 0, 0)   # the program may read its own /proc/self again
        limits = header['limits']
        cpu = int(limits['cpu_seconds'] + 0.999)
        set_limit(resource.RLIMIT_CPU, cpu, cpu + 1)
        set_limit(resource.RLIMIT_AS, limits['address_space_bytes'])
        set_limit(resource.RLIMIT_FSIZE, limits['file_size_bytes'])
        set_limit(resource.RLIMIT_NPROC, limits['max_processes'])
        set_limit(resource.RLIMIT_NOFILE, limits['max_open_files'])
        set_limit(resource.RLIMIT_CORE, 0)
        random.seed()
        text = source.decode('utf-8', 'replace')
        del source
        my_pid = _getpid()
        ok_report = _encode(nonce + ' ok\n')
        memory_report = _encode(nonce + ' memory\n')
        plain_report = _encode(nonce + ' exc ' + _hex(b'BaseException') + ' \n')
        _write(MARKER_FD, _encode(nonce + ' start\n'))
    except BaseException as e:
        try:
            if marker_ready:
                _write(MARKER_FD, (nonce + ' setup ' + ascii(e) + '\n').encode())
        finally:
            _exit(70)
    report = plain_report
    try:
        exec(compile(text, '<program>', 'exec'), {})
    except SystemExit as e:
        # sys.exit / raise SystemExit: the program chose to stop early. Never "completed".
        try:
            code = e.code
            status = 0 if code is None else (int.__and__(code, 0xff) if isinstance(code, int) else 1)
        except BaseException:
            status = 1
        flush_streams()
        _exit(status)
    except MemoryError:
        report = memory_report
    except BaseException as e:
        try:
            kind, message = describe(e)
            report = _encode(nonce + ' exc ' + _hex(_encode(kind, 'utf-8', 'surrogatepass')) + ' ' +
                             _hex(_encode(message, 'utf-8', 'surrogatepass')) + '\n')
        except BaseException:
            report = plain_report
    else:
        report = ok_report
    flush_streams()
    # A process the program forked returns from exec() too; only the original reports.
    if _getpid() == my_pid:
        try:
            _write(MARKER_FD, report)
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
    # Our children's pids, from the kernel's own list (no program-chosen text
    # such as a process name passes through our memory).
    found = []
    try:
        for task in os.listdir('/proc/self/task'):
            with open(f'/proc/self/task/{task}/children') as f:
                found += [int(p) for p in f.read().split()]
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


def wait_for(pid, seconds, watch_channel=False):
    # (wait status of pid or None when still running after `seconds`, whether
    # the pool asked to stop it early -- with watch_channel, a frame arriving
    # on the channel means "stop": the program went over its memory cgroup).
    try:
        exit_fd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        exit_fd = None
    poller = select.poll()
    if exit_fd is not None:
        poller.register(exit_fd, select.POLLIN)
    if watch_channel:
        poller.register(CHANNEL_FD, select.POLLIN)
    deadline = time.monotonic() + seconds
    try:
        while True:
            if exit_fd is None:
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    return status, False
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None, False
            step = remaining * 1000 if exit_fd is not None else min(remaining * 1000, 5)
            for fd, _ in poller.poll(max(step, 1)):
                if fd == CHANNEL_FD:
                    (n,) = struct.unpack('<I', read_exact(4))
                    read_exact(n)
                    return None, True
                if fd == exit_fd:
                    return os.waitpid(pid, 0)[1], False
    finally:
        if exit_fd is not None:
            os.close(exit_fd)


class OverBudget(Exception):
    pass


def wipe(root, budget):
    # Empties root (which stays), iteratively and relative to directory fds, so
    # neither depth nor path length matters; returns the budget left. A program
    # may have taken permissions away from its own directories: as their owner
    # we give them back on the way down.
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(root, flags)
    levels = [[None, None]]   # per depth: [name in the parent, names still to remove]
    try:
        while True:
            level = levels[-1]
            if level[1] is None:
                level[1] = os.listdir(fd)
                budget -= len(level[1])
                if budget < 0:
                    raise OverBudget
            pending = level[1]
            descended = False
            while pending:
                name = pending.pop()
                try:
                    os.unlink(name, dir_fd=fd)
                    continue
                except FileNotFoundError:
                    continue
                except IsADirectoryError:
                    pass
                os.chmod(name, 0o700, dir_fd=fd)
                child_fd = os.open(name, flags, dir_fd=fd)
                os.close(fd)
                fd = child_fd
                levels.append([name, None])
                descended = True
                break
            if descended:
                continue
            if len(levels) == 1:
                return budget
            name = levels.pop()[0]
            parent_fd = os.open('..', flags, dir_fd=fd)
            os.close(fd)
            fd = parent_fd
            os.rmdir(name, dir_fd=fd)
    finally:
        os.close(fd)


def reset_root(root):
    # What a program may have changed on a scratch root itself: its mode,
    # extended attributes (user.*, ACLs) and timestamps (a channel to the next
    # program otherwise).
    try:
        for attribute in os.listxattr(root):
            try:
                os.removexattr(root, attribute)
            except OSError:
                pass
    except OSError:
        pass
    try:
        os.chmod(root, 0o700)
        os.utime(root, ns=(QUIET_TIME_NS, QUIET_TIME_NS))
    except PermissionError:
        pass   # not ours (the mqueue root belongs to root and is sticky, like /tmp)


def prepare_scratch():
    # The program's working directory, empty, and the roots as new.
    os.mkdir(WORKDIR, 0o700)
    for root in [WORKDIR, SCRATCH] + EXTRA_SCRATCH:
        reset_root(root)


_info = ctypes.create_string_buffer(512) if _libc is not None else None


def fingerprint():
    # Numbers only -- never a name a program chose -- that change whenever a
    # program leaves anything in a scratch area or the IPC namespace: entries
    # (directory size, link count, times), mode, owner, extended attributes
    # (total size of their names), SysV objects (counts from *_INFO).
    state = []
    for path in [WORKDIR, SCRATCH] + EXTRA_SCRATCH:
        try:
            st = os.stat(path, follow_symlinks=False)
            xattrs = _libc.listxattr(os.fsencode(path), None, 0) if _libc is not None else 0
            state.append((st.st_ino, st.st_mode, st.st_uid, st.st_gid, st.st_nlink, st.st_size,
                          st.st_atime_ns, st.st_mtime_ns, xattrs))
        except OSError:
            state.append(None)
    if SWEEP_SYSV and _info is not None:
        _libc.shmctl(0, 14, _info)                                  # SHM_INFO: used_ids
        shm = int.from_bytes(_info.raw[0:4], 'little')
        _libc.msgctl(0, 12, _info)                                  # MSG_INFO: msgpool
        msg = int.from_bytes(_info.raw[0:4], 'little')
        _libc.semctl(0, 0, 19, _info)                               # SEM_INFO: semusz
        sem = int.from_bytes(_info.raw[28:32], 'little')
        state.append((shm, msg, sem))
    return tuple(state)


def sweep_sysv(budget):
    # Every SysV object of this IPC namespace (only programs live in it).
    removers = {'shm': lambda i: _libc.shmctl(i, 0, None), 'msg': lambda i: _libc.msgctl(i, 0, None),
                'sem': lambda i: _libc.semctl(i, 0, 0)}
    for kind, remove in removers.items():
        with open('/proc/sysvipc/' + kind) as listing:
            rows = listing.read().splitlines()[1:]
        budget -= len(rows)
        if budget < 0:
            raise OverBudget
        for row in rows:
            remove(int(row.split()[1]))   # IPC_RMID
    for kind in removers:
        with open('/proc/sysvipc/' + kind) as listing:
            if len(listing.read().splitlines()) > 1:
                return False
    return budget


def clean():
    # Runs in a forked cleaner: exit status 0 clean, 2 over budget, 1 failed.
    budget = CLEAN_BUDGET
    try:
        for root in [SCRATCH] + EXTRA_SCRATCH:
            try:
                budget = wipe(root, budget)
            except PermissionError:
                os.chmod(root, 0o700)      # a program made its scratch root unreadable
                budget = wipe(root, budget)
            reset_root(root)
        if SWEEP_SYSV and _libc is not None and sweep_sysv(budget) is False:
            return 1
        for root in [SCRATCH] + EXTRA_SCRATCH:
            if os.listdir(root):
                return 1
        prepare_scratch()
        return 0
    except OverBudget:
        return 2
    except OSError:
        return 1


def clean_up():
    # None when the scratch areas and IPC objects are as new, else why not.
    # Most programs leave nothing: when the fingerprint is that of a clean
    # worker there is nothing to do. Otherwise a forked cleaner works through
    # what is there, so that no name it reads stays in the zygote's memory.
    global clean_fingerprint
    if fingerprint() == clean_fingerprint:
        return None
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            code = clean()
        finally:
            _hard_exit(code)
    status, _ = wait_for(pid, CLEAN_SECONDS)
    if status is None:
        kill_everything(None)
        return f'cleaning up after the program took more than {CLEAN_SECONDS:.0f} s'
    if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0:
        clean_fingerprint = fingerprint()
        return None
    if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 2:
        return f'the program left more than {CLEAN_BUDGET} entries to clean'
    return f'cleaning up after the program failed (wait status {status})'


def run_one(header, fds):
    wall = float(header['limits']['wall_seconds'])
    try:
        start = time.monotonic()
        pid = os.fork()
        if pid == 0:
            try:
                child(header, fds)
            finally:
                _hard_exit(70)
    finally:
        for fd in fds:
            os.close(fd)
    status, stopped = wait_for(pid, max(wall - (time.monotonic() - start), 0.0), watch_channel=True)
    timed_out = status is None and not stopped
    duration = time.monotonic() - start
    statuses = kill_everything(pid)
    if status is None:
        status = statuses.get(pid, signal.SIGKILL)   # reaped by kill_everything; killed by us
    send({'status': status, 'timed_out': timed_out, 'duration': duration})


def count_visible_processes():
    try:
        return sum(1 for e in os.listdir('/proc') if e.isdigit())
    except OSError:
        return -1


def network_interfaces():
    # From /proc (if_nameindex needs a netlink socket, which seccomp refuses).
    try:
        with open('/proc/net/dev') as f:
            return [line.split(':')[0].strip() for line in f.read().splitlines()[2:]]
    except Exception:
        return []


if not IS_INIT:
    try:
        _prctl(36, 1, 0, 0, 0)   # PR_SET_CHILD_SUBREAPER: orphans come back to us
    except Exception:
        pass

prepare_scratch()
clean_fingerprint = fingerprint()
send({'hello': 1, 'pid': os.getpid(), 'uid': os.getuid(), 'gid': os.getgid(),
      'pid1': IS_INIT, 'dumpable_off': DUMPABLE_OFF, 'python': sys.version.split()[0],
      'preloaded': preloaded, 'visible_processes': count_visible_processes(),
      'interfaces': network_interfaces()})
while True:
    try:
        header, fds = receive()
    except EOFError:
        os._exit(0)   # the pool is gone (or closed us): the namespace dies with us
    if 'stop' in header:
        continue      # a stop that crossed the verdict on its way: that program is over
    verdict_sent = False
    try:
        run_one(header, fds)
        verdict_sent = True
        why = clean_up()
        send({'ready': why is None, 'why': why or ''})
    except Exception as e:
        try:
            kill_everything(None)
        except Exception:
            pass
        import traceback
        why = 'zygote: ' + ''.join(traceback.format_exception_only(type(e), e)).strip()
        if not verdict_sent:
            send({'error': why})
        send({'ready': False, 'why': why})
)PYTHON";

}  // namespace quanteval::sandbox::detail
