package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"time"
)

// server is a child process serving one proxy.
type server struct {
	url string
	cmd *exec.Cmd
	in  io.WriteCloser
}

func spawn(kind, upstreamURL string, args ...string) (*server, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self, append([]string{"-serve", kind, "-upstream", upstreamURL}, args...)...)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		cmd.Process.Kill()
		return nil, fmt.Errorf("%s did not start: %w", kind, err)
	}
	return &server{url: strings.TrimSpace(line), cmd: cmd, in: in}, nil
}

func (s *server) stop() {
	s.in.Close()
	s.cmd.Wait()
}

// fleet spawns servers over one upstream with the same extra flags and
// stops them all at the end of a run.
type fleet struct {
	upstreamURL string
	args        []string
	servers     []*server
}

func (f *fleet) start(kind string) (*server, error) {
	s, err := spawn(kind, f.upstreamURL, f.args...)
	if err == nil {
		f.servers = append(f.servers, s)
	}
	return s, err
}

func (f *fleet) stop() {
	for _, s := range f.servers {
		s.stop()
	}
}

// rssMB reads a process's current and peak resident memory.
func (s *server) rssMB() (cur, peak float64) {
	data, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.cmd.Process.Pid))
	for _, line := range strings.Split(string(data), "\n") {
		var kb float64
		if n, _ := fmt.Sscanf(line, "VmRSS: %f kB", &kb); n == 1 {
			cur = kb / 1024
		}
		if n, _ := fmt.Sscanf(line, "VmHWM: %f kB", &kb); n == 1 {
			peak = kb / 1024
		}
	}
	return cur, peak
}

func listen(h http.Handler) (string, func()) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	return "http://" + ln.Addr().String(), func() { srv.Close() }
}

// measure runs load and records the CPU time the server spent on it.
func (s *server) measure(load func() result) result {
	before := s.cpu()
	r := load()
	r.cpu = s.cpu() - before
	return r
}

// cpu is the server process's user+system time so far (/proc, in ticks of
// 1/100 s).
func (s *server) cpu() time.Duration {
	data, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", s.cmd.Process.Pid))
	f := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	var ut, st int64
	fmt.Sscan(f[11], &ut)
	fmt.Sscan(f[12], &st)
	return time.Duration(ut+st) * 10 * time.Millisecond
}
