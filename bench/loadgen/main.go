// Command loadgen drives PiANO's benchmark: an HTTP/1.1 load generator that presents a
// client certificate (which wrk and h2load cannot), an idle-connection holder, and a slow
// mutual-TLS back-end. Only Go's standard library, so Debian's golang-go builds it offline.
//
//	loadgen load  -url https://127.0.0.1:8443/roc -cert c.pem -key c.key -ca ca.pem -body req.xml ...
//	loadgen idle  -url https://127.0.0.1:8443/roc -n 10000 -hold 20s ...
//	loadgen serve -listen 127.0.0.1:9000 -cert s.pem -key s.key -ca ca.pem -delay 2s -body ans.xml
//
// Each command prints one JSON object per line on stdout; bench/run.py reads them.
package main

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

type headerList []string

func (h *headerList) String() string     { return strings.Join(*h, ", ") }
func (h *headerList) Set(v string) error { *h = append(*h, v); return nil }

type tlsFlags struct{ cert, key, ca string }

func (t *tlsFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&t.cert, "cert", "", "PEM certificate to present")
	fs.StringVar(&t.key, "key", "", "PEM private key of -cert")
	fs.StringVar(&t.ca, "ca", "", "PEM CA that signs the peer")
}

func (t *tlsFlags) load() (tls.Certificate, *x509.CertPool) {
	cert, err := tls.LoadX509KeyPair(t.cert, t.key)
	fail(err)
	pem, err := os.ReadFile(t.ca)
	fail(err)
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		fail(fmt.Errorf("%s: no certificate", t.ca))
	}
	return cert, pool
}

func fail(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(2)
	}
}

func emit(v any) {
	out, err := json.Marshal(v)
	fail(err)
	fmt.Println(string(out))
}

func cpuSeconds() float64 {
	var ru syscall.Rusage
	fail(syscall.Getrusage(syscall.RUSAGE_SELF, &ru))
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// target is where requests go and what they carry.
type target struct {
	addr    string
	request []byte // the whole HTTP/1.1 request, head and body
	close   []byte // the same with "Connection: close"
	config  *tls.Config
}

func newTarget(rawURL, bodyFile string, headers headerList, t tlsFlags) *target {
	u, err := url.Parse(rawURL)
	fail(err)
	if u.Scheme != "https" {
		fail(fmt.Errorf("%s: https only", rawURL))
	}
	body, err := os.ReadFile(bodyFile)
	fail(err)
	cert, pool := t.load()
	build := func(extra string) []byte {
		var b bytes.Buffer
		fmt.Fprintf(&b, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n", u.RequestURI(), u.Host, len(body))
		for _, h := range headers {
			fmt.Fprintf(&b, "%s\r\n", h)
		}
		b.WriteString(extra)
		b.WriteString("\r\n")
		b.Write(body)
		return b.Bytes()
	}
	return &target{
		addr:    u.Host,
		request: build(""),
		close:   build("Connection: close\r\n"),
		config: &tls.Config{
			Certificates: []tls.Certificate{cert},
			RootCAs:      pool,
			ServerName:   u.Hostname(),
			MinVersion:   tls.VersionTLS12,
			// No ClientSessionCache: every new connection is a full handshake.
		},
	}
}

// conn is one client connection with its reader.
type conn struct {
	tc *tls.Conn
	br *bufio.Reader
}

func (t *target) dial(timeout time.Duration) (*conn, error) {
	d := net.Dialer{Timeout: timeout}
	tc, err := tls.DialWithDialer(&d, "tcp", t.addr, t.config)
	if err != nil {
		return nil, err
	}
	return &conn{tc, bufio.NewReaderSize(tc, 16384)}, nil
}

// exchange sends one request on c and reads the whole answer; the error kind names a failure.
func (c *conn) exchange(request []byte, deadline time.Time) (int, string) {
	_ = c.tc.SetDeadline(deadline)
	if _, err := c.tc.Write(request); err != nil {
		return 0, "write"
	}
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return 0, "timeout"
		}
		return 0, "read"
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		return resp.StatusCode, "read_body"
	}
	if resp.Close {
		return resp.StatusCode, "closed"
	}
	return resp.StatusCode, ""
}

type workerResult struct {
	latencies  []time.Duration
	ok         int
	failures   map[string]int
	handshakes int // new connections whose exchange was measured
	resumed    int // ... of which resumed their TLS session
}

func runLoad(args []string) {
	fs := flag.NewFlagSet("load", flag.ExitOnError)
	var t tlsFlags
	t.register(fs)
	var headers headerList
	rawURL := fs.String("url", "", "https URL to POST to")
	bodyFile := fs.String("body", "", "file holding the request body")
	fs.Var(&headers, "H", "extra request header 'Name: value' (repeatable)")
	conns := fs.Int("c", 32, "concurrent connections")
	duration := fs.Duration("duration", 10*time.Second, "measured duration")
	warmup := fs.Duration("warmup", 2*time.Second, "unmeasured warm-up before it")
	maxRequests := fs.Int64("max-requests", 2_000_000, "stop after this many requests in all")
	newConn := fs.Bool("new-conn", false, "a new TLS connection (full handshake) per request")
	resume := fs.Bool("resume", false, "with -new-conn: resume the TLS session (tickets) on each new connection")
	rate := fs.Float64("rate", 0, "total requests per second (0: as fast as answers come)")
	timeout := fs.Duration("timeout", 30*time.Second, "per-request timeout")
	label := fs.String("label", "", "echoed in the report")
	ramp := fs.Duration("ramp", 0, "spread the connections' first requests over this long")
	failPause := fs.Duration("fail-pause", 0, "pause after a failure, as a client backing off")
	fail(fs.Parse(args))
	tg := newTarget(*rawURL, *bodyFile, headers, t)
	if *resume {
		tg.config.ClientSessionCache = tls.NewLRUClientSessionCache(4 * *conns)
	}

	start := time.Now()
	measureFrom := start.Add(*warmup)
	stopAt := measureFrom.Add(*duration)
	var issued atomic.Int64
	var cpuAtMeasure atomic.Value
	results := make([]workerResult, *conns)
	var wg sync.WaitGroup
	interval := time.Duration(0)
	if *rate > 0 {
		interval = time.Duration(float64(*conns) / *rate * float64(time.Second))
	}
	go func() {
		time.Sleep(time.Until(measureFrom))
		cpuAtMeasure.Store(cpuSeconds())
	}()
	for i := 0; i < *conns; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			r := &results[i]
			r.failures = map[string]int{}
			var c *conn
			next := start
			if interval > 0 {
				next = start.Add(interval * time.Duration(i) / time.Duration(*conns))
			}
			if *ramp > 0 {
				delay := *ramp * time.Duration(i) / time.Duration(*conns)
				time.Sleep(delay)
				next = next.Add(delay)
			}
			for issued.Add(1) <= *maxRequests {
				if interval > 0 {
					time.Sleep(time.Until(next))
				}
				sent := time.Now()
				if interval > 0 {
					sent = next // latency from the scheduled time: no coordinated omission
					next = next.Add(interval)
				}
				if sent.After(stopAt) {
					break
				}
				status, kind := 0, ""
				handshake, didResume := false, false
				if c == nil {
					var err error
					c, err = tg.dial(*timeout)
					if err != nil {
						kind = "connect"
					} else {
						handshake, didResume = true, c.tc.ConnectionState().DidResume
					}
				}
				if c != nil {
					request := tg.request
					if *newConn {
						request = tg.close
					}
					status, kind = c.exchange(request, time.Now().Add(*timeout))
					if *newConn || kind != "" {
						c.tc.Close()
						c = nil
					}
				}
				done := time.Now()
				if *failPause > 0 && (kind != "" && !(kind == "closed" && *newConn) || status != 200) {
					time.Sleep(*failPause)
				}
				if done.Before(measureFrom) || done.After(stopAt) {
					continue
				}
				if handshake {
					r.handshakes++
					if didResume {
						r.resumed++
					}
				}
				if kind == "closed" && *newConn {
					kind = ""
				}
				if kind == "" && status != 200 {
					kind = fmt.Sprintf("status_%d", status)
				}
				if kind != "" {
					r.failures[kind]++
					if kind == "connect" {
						time.Sleep(10 * time.Millisecond)
					}
					continue
				}
				r.ok++
				r.latencies = append(r.latencies, done.Sub(sent))
			}
			if c != nil {
				c.tc.Close()
			}
		}(i)
	}
	wg.Wait()
	end := time.Now()
	if end.After(stopAt) {
		end = stopAt
	}
	wall := end.Sub(measureFrom).Seconds()
	cpu0, _ := cpuAtMeasure.Load().(float64)
	var all []time.Duration
	failures := map[string]int{}
	ok, handshakes, resumed := 0, 0, 0
	for _, r := range results {
		all = append(all, r.latencies...)
		ok += r.ok
		handshakes += r.handshakes
		resumed += r.resumed
		for k, v := range r.failures {
			failures[k] += v
		}
	}
	sort.Slice(all, func(a, b int) bool { return all[a] < all[b] })
	pct := func(p float64) float64 {
		if len(all) == 0 {
			return 0
		}
		return float64(all[int(p*float64(len(all)-1))].Microseconds()) / 1000
	}
	nfail := 0
	for _, v := range failures {
		nfail += v
	}
	emit(map[string]any{
		"label":      *label,
		"ok":         ok,
		"failures":   nfail,
		"by_failure": failures,
		"seconds":    wall,
		"rps":        float64(ok) / wall,
		"p50_ms":     pct(0.50),
		"p99_ms":     pct(0.99),
		"max_ms":     pct(1.0),
		"cpu_cores":  (cpuSeconds() - cpu0) / wall,
		"gomaxprocs": runtime.GOMAXPROCS(0),
		"handshakes": handshakes,
		"resumed":    resumed,
	})
}

func runIdle(args []string) {
	fs := flag.NewFlagSet("idle", flag.ExitOnError)
	var t tlsFlags
	t.register(fs)
	var headers headerList
	rawURL := fs.String("url", "", "https URL")
	bodyFile := fs.String("body", "", "request body sent once on each connection")
	fs.Var(&headers, "H", "extra request header 'Name: value' (repeatable)")
	n := fs.Int("n", 10000, "connections to open and hold")
	parallel := fs.Int("parallel", 64, "connections opened at the same time")
	hold := fs.Duration("hold", 20*time.Second, "how long to hold them once all are open")
	deadline := fs.Duration("open-timeout", 300*time.Second, "give up opening after this")
	resume := fs.Bool("resume", false, "resume TLS sessions (tickets) after the first handshakes")
	fail(fs.Parse(args))
	tg := newTarget(*rawURL, *bodyFile, headers, t)
	if *resume {
		tg.config.ClientSessionCache = tls.NewLRUClientSessionCache(64)
	}
	start := time.Now()
	giveUp := start.Add(*deadline)
	held := make([]*conn, *n)
	var next atomic.Int64
	var failed atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < *parallel; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= *n || time.Now().After(giveUp) {
					return
				}
				c, err := tg.dial(30 * time.Second)
				if err == nil {
					status, kind := c.exchange(tg.request, time.Now().Add(30*time.Second))
					if kind != "" || status != 200 {
						c.tc.Close()
						err = fmt.Errorf("exchange: %s %d", kind, status)
					}
				}
				if err != nil {
					failed.Add(1)
					continue
				}
				_ = c.tc.SetDeadline(time.Time{})
				held[i] = c
			}
		}()
	}
	wg.Wait()
	opened := 0
	for _, c := range held {
		if c != nil {
			opened++
		}
	}
	emit(map[string]any{"event": "open", "opened": opened, "failed": failed.Load(),
		"seconds": time.Since(start).Seconds()})
	time.Sleep(*hold)
	alive := 0
	probe := make([]byte, 1)
	for _, c := range held {
		if c == nil {
			continue
		}
		_ = c.tc.SetReadDeadline(time.Now().Add(time.Millisecond))
		_, err := c.br.Read(probe)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			alive++
		}
		c.tc.Close()
	}
	emit(map[string]any{"event": "done", "opened": opened, "alive": alive})
}

func runServe(args []string) {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	var t tlsFlags
	t.register(fs)
	listen := fs.String("listen", "127.0.0.1:0", "address to listen on")
	delay := fs.Duration("delay", 2*time.Second, "time before each answer")
	bodyFile := fs.String("body", "", "file holding the answer")
	lifetime := fs.Duration("lifetime", 15*time.Minute, "exit after this long in any case")
	fail(fs.Parse(args))
	body, err := os.ReadFile(*bodyFile)
	fail(err)
	cert, pool := t.load()
	ln, err := net.Listen("tcp", *listen)
	fail(err)
	server := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			time.Sleep(*delay)
			w.Header().Set("Content-Type", "text/xml; charset=utf-8")
			w.Header().Set("Content-Length", fmt.Sprint(len(body)))
			_, _ = w.Write(body)
		}),
		TLSConfig: &tls.Config{
			Certificates: []tls.Certificate{cert},
			ClientCAs:    pool,
			ClientAuth:   tls.RequireAndVerifyClientCert,
			MinVersion:   tls.VersionTLS12,
		},
		TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){}, // HTTP/1.1 only
	}
	emit(map[string]any{"event": "listening", "addr": ln.Addr().String()})
	time.AfterFunc(*lifetime, func() { os.Exit(0) })
	fail(server.ServeTLS(ln, "", ""))
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: loadgen load|idle|serve [flags]")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "load":
		runLoad(os.Args[2:])
	case "idle":
		runIdle(os.Args[2:])
	case "serve":
		runServe(os.Args[2:])
	default:
		fail(fmt.Errorf("unknown command %q", os.Args[1]))
	}
}
