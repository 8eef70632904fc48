// Command loadgen is the HTTP/1.1 load generator of bench_sidecar_overhead.py.
//
// It does one phase per run and prints one JSON object on stdout:
//
//	open    fixed rate, scheduled send times over -conns keep-alive connections;
//	        a sample is measured from its scheduled time, so queueing counts
//	closed  as many requests as -conns connections can do in -seconds (max RPS)
//	serial  -n requests one at a time on one connection
//	ttft    -n streaming requests one at a time; a sample is the time to the
//	        first body chunk
//	serve   the bench's upstream: replays the Python fake's captured answers
//	        (-answers) on -port until killed or -seconds have passed (serve.go)
//
// With -pid, it also reports the CPU time that process (its threads and its
// children, as nginx's worker) used during the measured window, and the busy
// share of every CPU from /proc/stat, so a reader can tell whether the proxy
// or the load generator's core was the limit. Stdlib only; loopback only.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

const reqTimeout = 10 * time.Second

type conn struct {
	c   net.Conn
	r   *bufio.Reader
	req []byte
}

func dial(port int, path string, body []byte) (*conn, error) {
	c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), 5*time.Second)
	if err != nil {
		return nil, err
	}
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
	}
	req := fmt.Appendf(nil, "POST %s HTTP/1.1\r\nhost: 127.0.0.1:%d\r\ncontent-type: application/json\r\n"+
		"authorization: Bearer sk-bench\r\ncontent-length: %d\r\n\r\n", path, port, len(body))
	req = append(req, body...)
	return &conn{c: c, r: bufio.NewReaderSize(c, 64<<10), req: req}, nil
}

var errClose = errors.New("server closes the connection")

// headers reads header lines up to the empty line and hands each name and
// trimmed value to fn (the client's answers and the serve mode's requests);
// an error from fn stops the read.
func headers(r *bufio.Reader, fn func(name, value []byte) error) error {
	for {
		line, err := r.ReadSlice('\n')
		if err != nil {
			return err
		}
		if len(line) <= 2 {
			return nil
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		if err := fn(name, bytes.TrimSpace(value)); err != nil {
			return err
		}
	}
}

// do sends the request and reads the whole answer. It returns the time from
// the write to the first body byte (the first chunk for chunked answers) and
// errClose when the server asked to close the connection (the answer was read).
func (k *conn) do() (time.Duration, error) {
	_ = k.c.SetDeadline(time.Now().Add(reqTimeout))
	t0 := time.Now()
	if _, err := k.c.Write(k.req); err != nil {
		return 0, err
	}
	line, err := k.r.ReadSlice('\n')
	if err != nil {
		return 0, err
	}
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) {
		return 0, fmt.Errorf("bad status line %q", line)
	}
	status, _ := strconv.Atoi(string(line[9:12]))
	length, chunked, closing := -1, false, false
	err = headers(k.r, func(name, value []byte) (err error) {
		switch {
		case bytes.EqualFold(name, []byte("content-length")):
			length, err = strconv.Atoi(string(value))
		case bytes.EqualFold(name, []byte("transfer-encoding")):
			chunked = bytes.EqualFold(value, []byte("chunked"))
		case bytes.EqualFold(name, []byte("connection")):
			closing = bytes.EqualFold(value, []byte("close"))
		}
		return err
	})
	if err != nil {
		return 0, err
	}
	var first time.Duration
	switch {
	case chunked:
		for {
			line, err = k.r.ReadSlice('\n')
			if err != nil {
				return 0, err
			}
			if first == 0 {
				first = time.Since(t0)
			}
			hex, _, _ := bytes.Cut(bytes.TrimSpace(line), []byte(";"))
			size, err := strconv.ParseInt(string(hex), 16, 64)
			if err != nil {
				return 0, fmt.Errorf("bad chunk size %q", line)
			}
			if size == 0 {
				for { // trailers, then the empty line
					line, err = k.r.ReadSlice('\n')
					if err != nil {
						return 0, err
					}
					if len(line) <= 2 {
						break
					}
				}
				break
			}
			if _, err = k.r.Discard(int(size) + 2); err != nil {
				return 0, err
			}
		}
	case length >= 0:
		if _, err = k.r.Discard(length); err != nil {
			return 0, err
		}
		first = time.Since(t0)
	default:
		if _, err = io.Copy(io.Discard, k.r); err != nil {
			return 0, err
		}
		first, closing = time.Since(t0), true
	}
	if status != 200 {
		return 0, fmt.Errorf("HTTP %d", status)
	}
	if closing {
		return first, errClose
	}
	return first, nil
}

type target struct {
	port int
	path string
	body []byte
}

// request runs one request on *k, (re)connecting as needed. ok is false on a
// failed request (the connection is then replaced for the next one).
func (t target) request(k **conn) (first time.Duration, ok bool) {
	if *k == nil {
		c, err := dial(t.port, t.path, t.body)
		if err != nil {
			return 0, false
		}
		*k = c
	}
	first, err := (*k).do()
	if err != nil {
		(*k).c.Close()
		*k = nil
		return first, errors.Is(err, errClose)
	}
	return first, true
}

func openConns(t target, n int) []*conn {
	out := make([]*conn, n)
	for i := range out {
		out[i], _ = dial(t.port, t.path, t.body)
	}
	return out
}

func closeAll(cs []*conn) {
	for _, c := range cs {
		if c != nil {
			c.c.Close()
		}
	}
}

// preciseSleepThread makes this goroutine's thread sleep with nanosleep and a
// 1 ns timer slack: Go's own timers wake up to ~1 ms late when the process is
// otherwise idle, which would add to every scheduled send time.
func preciseSleepThread() {
	runtime.LockOSThread()
	_, _, _ = syscall.RawSyscall(syscall.SYS_PRCTL, 29 /* PR_SET_TIMERSLACK */, 1, 0)
}

// sleepUntil returns at the given time, not before: nanosleep returns early (EINTR)
// when a signal arrives, and the Go runtime signals its threads (preemption,
// GC). An early return sent a request before its time; when it was answered
// before that time its (negative) sample was dropped without being counted.
func sleepUntil(at time.Time) {
	for d := time.Until(at); d > 0; d = time.Until(at) {
		ts := syscall.NsecToTimespec(int64(d))
		_ = syscall.Nanosleep(&ts, nil)
	}
}

func openLoop(t target, rate, seconds float64, conns int) (samples []int64, errs int64, late []int64) {
	pool := openConns(t, conns)
	total := int(rate * seconds)
	samples = make([]int64, total)
	late = make([]int64, total)
	jobs := make(chan int, total)
	period := time.Duration(float64(time.Second) / rate)
	start := time.Now().Add(50 * time.Millisecond)
	var wg sync.WaitGroup
	var nerr atomic.Int64
	for w := range conns {
		wg.Add(1)
		go func(k *conn) {
			defer wg.Done()
			for i := range jobs {
				if _, ok := t.request(&k); ok {
					samples[i] = int64(time.Since(start.Add(time.Duration(i) * period)))
				} else {
					samples[i] = -1
					nerr.Add(1)
				}
			}
			if k != nil {
				k.c.Close()
			}
		}(pool[w])
	}
	preciseSleepThread()
	for i := range total {
		at := start.Add(time.Duration(i) * period)
		sleepUntil(at)
		late[i] = int64(time.Since(at))
		jobs <- i
	}
	close(jobs)
	runtime.UnlockOSThread()
	wg.Wait()
	kept := samples[:0]
	for _, s := range samples {
		if s >= 0 {
			kept = append(kept, s)
		}
	}
	return kept, nerr.Load(), late
}

func closedLoop(t target, seconds float64, conns int) (done, errs int64, wall time.Duration) {
	pool := openConns(t, conns)
	var nd, ne atomic.Int64
	t0 := time.Now()
	stop := t0.Add(time.Duration(seconds * float64(time.Second)))
	var wg sync.WaitGroup
	for w := range conns {
		wg.Add(1)
		go func(k *conn) {
			defer wg.Done()
			for time.Now().Before(stop) {
				if _, ok := t.request(&k); ok {
					nd.Add(1)
				} else {
					ne.Add(1)
				}
			}
			if k != nil {
				k.c.Close()
			}
		}(pool[w])
	}
	wg.Wait()
	return nd.Load(), ne.Load(), time.Since(t0)
}

// oneByOne: n requests on one connection; firstByte picks the TTFB over the total.
func oneByOne(t target, n int, firstByte bool) (samples []int64, errs int64) {
	k := openConns(t, 1)[0]
	for range n {
		t0 := time.Now()
		first, ok := t.request(&k)
		if !ok {
			errs++
			continue
		}
		if firstByte {
			samples = append(samples, int64(first))
		} else {
			samples = append(samples, int64(time.Since(t0)))
		}
	}
	closeAll([]*conn{k})
	return samples, errs
}

// --- /proc --------------------------------------------------------------------------

// cpuNanos: time on CPU of pid's threads and, recursively, its children.
func cpuNanos(pid int) int64 {
	var total int64
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*", pid))
	for _, task := range tasks {
		if b, err := os.ReadFile(task + "/schedstat"); err == nil {
			if f := strings.Fields(string(b)); len(f) > 0 {
				n, _ := strconv.ParseInt(f[0], 10, 64)
				total += n
			}
		}
		if b, err := os.ReadFile(task + "/children"); err == nil {
			for _, c := range strings.Fields(string(b)) {
				if cp, err := strconv.Atoi(c); err == nil {
					total += cpuNanos(cp)
				}
			}
		}
	}
	return total
}

// cpuTicks: per CPU (busy, total) jiffies from /proc/stat.
func cpuTicks() map[string][2]int64 {
	out := map[string][2]int64{}
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return out
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 8 || !strings.HasPrefix(f[0], "cpu") || f[0] == "cpu" {
			continue
		}
		var busy, all int64
		for i, v := range f[1:] {
			n, _ := strconv.ParseInt(v, 10, 64)
			if i >= 8 { // guest time is already counted in user
				break
			}
			all += n
			if i != 3 && i != 4 { // idle, iowait
				busy += n
			}
		}
		out[strings.TrimPrefix(f[0], "cpu")] = [2]int64{busy, all}
	}
	return out
}

// selfCPU: this process's user + system CPU time.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

type window struct {
	pid   int
	t0    time.Time
	cpu0  int64
	self0 time.Duration
	tick0 map[string][2]int64
}

func begin(pid int) *window {
	w := &window{pid: pid, tick0: cpuTicks(), self0: selfCPU(), t0: time.Now()}
	if pid > 0 {
		w.cpu0 = cpuNanos(pid)
	}
	return w
}

// end writes the window's figures into out and returns the CPU time pid used.
func (w *window) end(out map[string]any) time.Duration {
	wall := time.Since(w.t0)
	tick1 := cpuTicks()
	busy := map[string]float64{}
	for k, a := range tick1 {
		if b, ok := w.tick0[k]; ok && a[1] > b[1] {
			busy[k] = round3(float64(a[0]-b[0]) / float64(a[1]-b[1]))
		}
	}
	out["wall_s"] = round3(wall.Seconds())
	out["cpu_busy"] = busy
	out["loadgen_cpu_s"] = round3((selfCPU() - w.self0).Seconds())
	if w.pid > 0 {
		used := cpuNanos(w.pid) - w.cpu0
		out["proxy_cpu_s"] = round3(float64(used) / 1e9)
		out["proxy_cpu_util"] = round3(float64(used) / float64(wall))
		return time.Duration(used)
	}
	return 0
}

func round3(x float64) float64 { return float64(int64(x*1000+0.5)) / 1000 }

func main() {
	mode := flag.String("mode", "open", "open | closed | serial | ttft")
	port := flag.Int("port", 0, "target port on 127.0.0.1")
	path := flag.String("path", "/v1/chat/completions", "request path")
	bodyFile := flag.String("body-file", "", "request body (a file)")
	rate := flag.Float64("rate", 1000, "open loop: requests per second")
	seconds := flag.Float64("seconds", 3, "open loop / closed loop: duration")
	conns := flag.Int("conns", 32, "keep-alive connections")
	n := flag.Int("n", 100, "serial / ttft: requests")
	pid := flag.Int("pid", 0, "process whose CPU time to report (0: none)")
	answersFile := flag.String("answers", "", "serve: the captured answers (JSON)")
	flag.Parse()
	if *mode == "serve" {
		if *port <= 0 || *port > 65535 || *seconds <= 0 || *seconds > 86400 {
			fmt.Fprintln(os.Stderr, "loadgen: bad arguments")
			os.Exit(2)
		}
		err := serve(*port, *answersFile, time.Duration(*seconds*float64(time.Second)))
		fmt.Fprintln(os.Stderr, "loadgen serve:", err)
		os.Exit(1)
	}
	if *port <= 0 || *port > 65535 || *conns < 1 || *conns > 4096 || *rate <= 0 ||
		*seconds <= 0 || *seconds > 600 || *n < 1 || *n > 10_000_000 {
		fmt.Fprintln(os.Stderr, "loadgen: bad arguments")
		os.Exit(2)
	}
	body, err := os.ReadFile(*bodyFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(2)
	}
	// A hard stop whatever happens (each request also has its own deadline).
	time.AfterFunc(time.Duration(*seconds*float64(time.Second))+2*time.Minute, func() {
		fmt.Fprintln(os.Stderr, "loadgen: overall timeout")
		os.Exit(3)
	})
	t := target{port: *port, path: *path, body: body}
	out := map[string]any{"mode": *mode}
	switch *mode {
	case "open":
		// Warm-up: every connection once.
		pool := openConns(t, min(*conns, 50))
		for _, k := range pool {
			t.request(&k)
		}
		closeAll(pool)
		w := begin(*pid)
		samples, errs, late := openLoop(t, *rate, *seconds, *conns)
		w.end(out)
		out["samples_ns"], out["errors"] = samples, errs
		out["sched_late_ns_p50"], out["sched_late_ns_p99"] = pctl(late, 0.5), pctl(late, 0.99)
	case "closed":
		w := begin(*pid)
		done, errs, wall := closedLoop(t, *seconds, *conns)
		w.end(out)
		out["done"], out["errors"] = done, errs
		out["rps"] = float64(done) / wall.Seconds()
	case "serial", "ttft":
		w := begin(*pid)
		samples, errs := oneByOne(t, *n, *mode == "ttft")
		used := w.end(out)
		out["samples_ns"], out["errors"] = samples, errs
		if *pid > 0 && len(samples) > 0 {
			out["proxy_cpu_us_per_req"] = float64(used) / 1e3 / float64(len(samples))
		}
	default:
		fmt.Fprintln(os.Stderr, "loadgen: unknown mode", *mode)
		os.Exit(2)
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		os.Exit(1)
	}
}

func pctl(v []int64, q float64) int64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return s[min(len(s)-1, int(q*float64(len(s))))]
}
