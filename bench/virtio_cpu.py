#!/usr/bin/env python3
"""
bench/virtio_cpu.py ROUNDS PATTERN QD SECONDS LABEL=MONITOR[,io=ENGINE] ... [qemu]

One virtio-bench pattern of the probe guest (test=virtio-bench patterns=PATTERN qd=QD)
under several nestvm binaries (and QEMU's virtio-blk-pci, as bench/virtio_guest.sh
runs it), interleaved, ROUNDS times each. For each: the best and median IOPS, and,
steadier on a busy host, the median CPU time (user + system) and context switches per
request of the monitor's threads other than the vCPU (the guest polls, so the vCPU
thread is always busy; /proc/PID/task sampled every 50 ms). QEMU's threads are not
named apart from its vCPU without -name debug-threads=on: its CPU figure includes the
vCPU and start-up and is not comparable. The image is BENCH_IMAGE
(/var/tmp/nestvm-bench-guest.img, 256 MiB, made by bench/virtio_guest.sh).
Example: bench/virtio_cpu.py 5 seqwrite 32 2 uring=build/release/nestvm \
             threads=build/release/nestvm,io=threads qemu
"""
import os, re, subprocess, sys, time, statistics
rounds, pattern, qd, secs = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
variants = sys.argv[5:]
W = os.path.abspath(os.path.join(os.path.dirname(__file__), '..'))
IMG = os.environ.get('BENCH_IMAGE', '/var/tmp/nestvm-bench-guest.img')
args = f'test=virtio-bench seconds={secs} span_mb=256 qd={qd} patterns={pattern}'
HZ = os.sysconf('SC_CLK_TCK')

def sample(pid, acc):
    try:
        tids = os.listdir(f'/proc/{pid}/task')
    except FileNotFoundError:
        return
    for t in tids:
        try:
            st = open(f'/proc/{pid}/task/{t}/stat').read()
            status = open(f'/proc/{pid}/task/{t}/status').read()
        except (FileNotFoundError, ProcessLookupError):
            continue
        comm = st[st.index('(') + 1:st.rindex(')')]
        f = st[st.rindex(')') + 2:].split()
        cpu = (int(f[11]) + int(f[12])) * 1000 / HZ
        cs = sum(int(x) for x in re.findall(r'ctxt_switches:\s+(\d+)', status))
        acc[t] = (comm, cpu, cs)

def run(v):
    if v == 'qemu':
        cmd = ['qemu-system-x86_64', '-accel', 'kvm', '-M', 'q35', '-m', '256', '-smp', '1', '-nodefaults',
               '-display', 'none', '-serial', 'stdio', '-device', 'isa-debug-exit,iobase=0xf4,iosize=4',
               '-kernel', W + '/build/guest/probe.elf', '-append', args, '-drive',
               f'file={IMG},if=none,id=d0,format=raw,cache=writeback', '-device',
               'virtio-blk-pci,drive=d0,disable-legacy=on']
    else:
        b = v.split('=', 1)[1]
        b, _, eng = b.partition(',')
        cmd = [b, 'run', '--kernel', W + '/build/guest/probe.elf', '--cmdline', args, '--disk',
               IMG + (',' + eng if eng else '')]
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    acc = {}
    while p.poll() is None:
        sample(p.pid, acc)
        time.sleep(0.05)
    out = p.stdout.read()
    m = re.search(r'ops=(\d+) us=(\d+) iops=(\d+)', out)
    if not m:
        print(out[-500:]); return None
    ops, iops = int(m.group(1)), int(m.group(3))
    other = [(c, cpu, cs) for c, cpu, cs in acc.values() if not re.match(r'vcpu|CPU \d', c)]
    cpu = sum(x[1] for x in other); cs = sum(x[2] for x in other)
    return iops, cpu * 1e3 / ops, cs * 1e3 / ops, sorted(set(x[0] for x in other))

res = {v: [] for v in variants}
print(f'{time.strftime("%H:%M:%S", time.gmtime())} load {open("/proc/loadavg").read().split()[:3]} {pattern} qd={qd} {secs}s x{rounds}')
for r in range(rounds):
    for v in variants:
        subprocess.run(['sync'])
        x = run(v)
        if x: res[v].append(x)
for v in variants:
    name = v.split('=')[0]
    rs = res[v]
    if not rs: continue
    print(f'{name:10s} best {max(x[0] for x in rs):7d} iops  median {statistics.median(x[0] for x in rs):7.0f}  '
          f'cpu {statistics.median(x[1] for x in rs):5.1f} us/req  cs/1000 {statistics.median(x[2] for x in rs):6.1f}  '
          f'all {[x[0] for x in rs]}')
print(f'{time.strftime("%H:%M:%S", time.gmtime())} load {open("/proc/loadavg").read().split()[:3]}')
