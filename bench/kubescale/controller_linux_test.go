package kubescale

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"syscall"
	"time"
)

// controllerProc is a `pipit controller` process with its log in a file.
type controllerProc struct {
	cmd     *exec.Cmd
	pid     int
	metrics string // http://127.0.0.1:PORT/metrics
	logPath string
	exited  chan struct{} // closed when the process has exited
	state   *os.ProcessState
}

// startController runs bin with args plus a --metrics-bind-address on a
// free loopback port.
func startController(bin string, args []string, logPath string) (*controllerProc, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := l.Addr().String()
	l.Close()
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	p := &controllerProc{metrics: "http://" + addr + "/metrics", logPath: logPath, exited: make(chan struct{})}
	p.cmd = exec.Command(bin, append(args, "--metrics-bind-address", addr)...)
	p.cmd.Stdout, p.cmd.Stderr = logFile, logFile
	// The controller dies with the benchmark even when the benchmark is
	// killed. Pdeathsig fires when the thread that started the child
	// exits, so that thread stays locked until the child is gone.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with this goroutine
		defer logFile.Close()
		if err := p.cmd.Start(); err != nil {
			started <- err
			close(p.exited)
			return
		}
		started <- nil
		_ = p.cmd.Wait()
		p.state = p.cmd.ProcessState
		close(p.exited)
	}()
	if err := <-started; err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	p.pid = p.cmd.Process.Pid
	return p, p.waitMetrics(30 * time.Second)
}

// waitMetrics waits until /metrics answers.
func (p *controllerProc) waitMetrics(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := p.scrape(ctx)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-p.exited:
			return fmt.Errorf("pipit controller exited: %v; see %s", p.cmd.ProcessState, p.logPath)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("pipit controller's /metrics did not answer within %s: %w", timeout, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// scrape reads the controller's /metrics.
func (p *controllerProc) scrape(ctx context.Context) (metrics, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.metrics, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", p.metrics, resp.Status)
	}
	return parseMetrics(string(body))
}

// stop asks the controller to stop, and kills it when it has not within
// 30 seconds.
func (p *controllerProc) stop() {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// running fails when the controller has exited.
func (p *controllerProc) running() error {
	select {
	case <-p.exited:
		return fmt.Errorf("pipit controller exited early (%v); its log: %s", p.state, p.logPath)
	default:
		return nil
	}
}
