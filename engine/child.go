package engine

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/hermod-sms/hermod/store"
)

// Where a channel's claim loop runs: the value of ProcessSetting in the
// channel's Settings.
const (
	// ProcessSetting is the key of a channel's Settings JSON object that
	// says where the channel runs: ProcessInline or ProcessChild. It
	// belongs to the engine, which removes it before the channel type
	// decodes its settings, so no channel type may use it for itself.
	ProcessSetting = "process"
	// ProcessInline runs the channel inside the service's process (the
	// default, and what SQLite wants).
	ProcessInline = "inline"
	// ProcessChild runs the channel in a child process that the service
	// starts through Config.ChildCommand, watches, restarts with backoff
	// and stops: a crash of the channel's driver stays in that process.
	ProcessChild = "child"
)

// SplitChannelSettings separates the engine's own key (ProcessSetting)
// from a channel's Settings JSON object. It returns where the channel runs
// (ProcessInline when the key is absent) and the settings to give the
// channel type's constructor. Settings that are not a JSON object are
// returned unchanged, for the constructor to report in its own words; an
// unknown process value is an error.
func SplitChannelSettings(settings string) (process string, rest json.RawMessage, err error) {
	raw := json.RawMessage(settings)
	if !strings.Contains(settings, ProcessSetting) && !strings.Contains(settings, `\u`) {
		return ProcessInline, raw, nil // the common case: nothing to remove
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil || m == nil {
		return ProcessInline, raw, nil
	}
	v, ok := m[ProcessSetting]
	if !ok {
		return ProcessInline, raw, nil
	}
	var s string
	if err := json.Unmarshal(v, &s); err != nil {
		return "", nil, fmt.Errorf("settings: %q is %s, not a string: set it to %q (the default: in the service's process) or %q (in a child process, hermod channel run NAME)", ProcessSetting, v, ProcessInline, ProcessChild)
	}
	switch strings.ToLower(strings.TrimSpace(s)) {
	case ProcessInline, "":
		process = ProcessInline
	case ProcessChild:
		process = ProcessChild
	default:
		return "", nil, fmt.Errorf("settings: %q is %q: set it to %q (the default: in the service's process) or %q (in a child process, hermod channel run NAME)", ProcessSetting, s, ProcessInline, ProcessChild)
	}
	delete(m, ProcessSetting)
	rest, err = json.Marshal(m)
	if err != nil {
		return "", nil, fmt.Errorf("settings: re-encode without %q: %w", ProcessSetting, err)
	}
	return process, rest, nil
}

// ChildProcess describes the child process Config.ChildCommand builds.
type ChildProcess struct {
	// Channel is the name of the channel the child runs
	// (Config.OnlyChannels of the child's engine).
	Channel string
	// Node is the child's node name (its Config.Node), unique per start.
	Node string
	// ParentNode is the starting engine's node name (the child's
	// Config.ParentNode).
	ParentNode string
}

// childOutputLine is the longest line of a child's output that is logged;
// the rest of a longer line is dropped.
const childOutputLine = 64 << 10

// childRunner runs one channel in a child process: it starts the process
// built by Config.ChildCommand, copies its output into the engine's log,
// restarts it with backoff when it exits, and terminates it on Stop.
type childRunner struct {
	channelBase

	mu      sync.Mutex
	proc    *childProc // the running child; nil between starts
	stopped bool       // Stop was called: start nothing more
	warned  bool       // the SQLite warning was logged
}

// childProc is one started child process.
type childProc struct {
	cmd   *exec.Cmd
	pid   int
	node  string
	stdin *os.File // closing it asks the child to stop
	log   *slog.Logger

	done   chan struct{} // closed when Wait returned: the process is gone
	err    error         // Wait's result, read after done
	output chan struct{} // closed when its output reached end of file

	mu       sync.Mutex
	lastLine string // the last error or unstructured line it printed
}

func newChildRunner(s *supervisor, c *store.Channel) *childRunner {
	return &childRunner{channelBase: newChannelBase(s, c)}
}

func (r *childRunner) Start(ctx context.Context) error {
	return r.startLoop(ctx, "channel "+r.cfg.Name+" (child process)", r.run)
}

// Stop asks the child to stop (its standard input closes; on Unix it also
// gets SIGTERM), waits for it until ctx's deadline (at least a second),
// then kills it.
func (r *childRunner) Stop(ctx context.Context) {
	r.loop.signal()
	r.loop.wait(ctx)
	r.mu.Lock()
	r.stopped = true
	p := r.proc
	r.proc = nil
	r.mu.Unlock()
	if p != nil {
		r.terminate(ctx, p)
	}
	r.publishStopped()
}

func (r *childRunner) run(ctx context.Context) {
	bo := &backoff{min: r.e.cfg.RestartBackoff, max: time.Minute}
	stopping := r.stopping()
	for {
		select {
		case <-ctx.Done():
			return
		case <-stopping:
			return
		default:
		}
		// This state must reach the table before the child can write its
		// own, or it would hide them.
		r.setStatus(channelStarting, "starting a child process")
		if !r.s.status.waitWritten(ctx, stopping, r.cfg.ID, r.e.cfg.StoreTimeout) {
			select {
			case <-ctx.Done():
				return
			case <-stopping:
				return
			default: // the database is slow or away: start it all the same
			}
		}
		p, err := r.spawn()
		if err != nil {
			if errors.Is(err, errStopping) {
				return
			}
			if !r.startFailed(ctx, stopping, "channel child process not started; retrying", bo.next(), err) {
				return
			}
			continue
		}
		startedAt := time.Now()
		// The child's engine publishes the channel's states from here on,
		// naming itself ("child process pid N of node P").
		r.log.Info("channel child process started", "type", r.cfg.Type, "pid", p.pid, "child_node", p.node)
		r.s.started.signal(r.cfg.Name)

		select {
		case <-ctx.Done():
			// Hard stop: as if this process died, except that the child
			// is not left behind.
			_ = p.cmd.Process.Kill()
			<-p.done
			return
		case <-stopping:
			return // Stop terminates it
		case <-p.done:
		}

		// The child exited by itself: a crash, or its engine gave up.
		r.mu.Lock()
		if r.proc == p {
			r.proc = nil
		}
		r.mu.Unlock()
		select {
		case <-p.output:
		case <-time.After(time.Second): // a grandchild may hold the pipe
		}
		d := restartDelay(bo, startedAt)
		exit := exitDescription(p.err)
		details := fmt.Sprintf("child process pid %d exited (%s); restarting in %s", p.pid, exit, d.Round(time.Millisecond))
		if last := p.last(); last != "" {
			details += "; its last words: " + last
		}
		r.log.Error("channel child process exited; restarting it", "pid", p.pid, "exit", exit, "retry_in", d.Round(time.Millisecond).String())
		r.setStatus(channelError, details)
		r.s.failed.signal(r.cfg.Name)
		r.s.childExited.signal(childExit{Channel: r.cfg.Name, PID: p.pid, Exit: exit})
		if !waitWake(ctx, stopping, d) {
			return
		}
	}
}

// spawn builds and starts the child process.
func (r *childRunner) spawn() (*childProc, error) {
	e := r.e
	if e.cfg.ChildCommand == nil {
		return nil, fmt.Errorf("the channel's settings say %q: %q, but this engine cannot start child processes (engine.Config.ChildCommand is nil): run it with hermod, or remove the setting", ProcessSetting, ProcessChild)
	}
	if e.store.Backend() == "sqlite" {
		r.mu.Lock()
		warn := !r.warned
		r.warned = true
		r.mu.Unlock()
		if warn {
			r.log.Warn("channel runs in a child process on SQLite: the child and this service share SQLite's single writer and wait for each other's writes; PostgreSQL or SQL Server suit child processes better")
		}
	}
	spec := ChildProcess{Channel: r.cfg.Name, Node: childNodeName(e.node, r.cfg.Name), ParentNode: e.node}
	var cmd *exec.Cmd
	err := safeCall(r.log, "ChildCommand", func() (err error) {
		cmd, err = e.cfg.ChildCommand(spec)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("build the child process command: %w", err)
	}
	if cmd == nil {
		return nil, errors.New("build the child process command: engine.Config.ChildCommand returned no command and no error")
	}
	stdinR, stdinW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("child process: create its standard input: %w", err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		stdinR.Close()
		stdinW.Close()
		return nil, fmt.Errorf("child process: create its output pipe: %w", err)
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdinR, outW, outW
	setChildAttributes(cmd)
	err = cmd.Start()
	// The child holds its own copies of these ends now.
	stdinR.Close()
	outW.Close()
	if err != nil {
		stdinW.Close()
		outR.Close()
		return nil, fmt.Errorf("start the child process %s: %w", cmd.Path, err)
	}
	p := &childProc{
		cmd:    cmd,
		pid:    cmd.Process.Pid,
		node:   spec.Node,
		stdin:  stdinW,
		log:    r.log.With("child_pid", cmd.Process.Pid),
		done:   make(chan struct{}),
		output: make(chan struct{}),
	}
	go func() {
		defer close(p.output)
		defer outR.Close()
		p.forward(outR)
	}()
	go func() {
		p.err = cmd.Wait()
		stdinW.Close()
		close(p.done)
	}()
	r.mu.Lock()
	if r.stopped {
		r.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), defaultStopTimeout)
		r.terminate(ctx, p)
		cancel()
		return nil, errStopping
	}
	r.proc = p
	r.mu.Unlock()
	return p, nil
}

// terminate asks p to stop and waits for it until ctx's deadline (at least
// channelStopTimeout), then kills it. It returns when the process is gone.
func (r *childRunner) terminate(ctx context.Context, p *childProc) {
	select {
	case <-p.done:
		return
	default:
	}
	// End of input is the portable request to stop; a signal reaches a
	// child that is busy elsewhere.
	_ = p.stdin.Close()
	if err := askToStop(p.cmd.Process); err != nil {
		r.log.Debug("child process: stop signal not delivered", "pid", p.pid, "error", err)
	}
	grace := stopGrace(ctx)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-p.done:
		r.log.Info("channel child process stopped", "pid", p.pid, "exit", exitDescription(p.err))
		return
	case <-t.C:
	}
	r.log.Warn("channel child process did not stop in time; killing it", "pid", p.pid, "waited", grace.Round(time.Millisecond).String())
	if err := p.cmd.Process.Kill(); err != nil {
		r.log.Error("child process: kill failed", "pid", p.pid, "error", err)
	}
	<-p.done
}

// forward copies the child's output into the engine's log, a line a
// record: the child's own JSON log records keep their level, message and
// attributes; other lines (a panic's stack, the last error) are warnings.
func (p *childProc) forward(r io.Reader) {
	br := bufio.NewReaderSize(r, 4096)
	var line []byte
	for {
		chunk, isPrefix, err := br.ReadLine()
		if len(line) < childOutputLine {
			line = append(line, chunk[:min(len(chunk), childOutputLine-len(line))]...)
		}
		if err != nil {
			if len(line) > 0 {
				p.logLine(line)
			}
			return
		}
		if isPrefix {
			continue
		}
		p.logLine(line)
		line = line[:0]
	}
}

// logLine logs one line of the child's output.
func (p *childProc) logLine(line []byte) {
	line = bytes.TrimSpace(line)
	if len(line) == 0 {
		return
	}
	ctx := context.Background()
	if line[0] == '{' {
		if level, msg, attrs, ok := decodeLogRecord(line); ok {
			if level >= slog.LevelError {
				p.remember(msg)
			}
			p.log.Log(ctx, level, msg, attrs...)
			return
		}
	}
	p.remember(string(line))
	p.log.Warn("child process output", "line", string(line))
}

func (p *childProc) remember(s string) {
	p.mu.Lock()
	p.lastLine = truncate(s, 300)
	p.mu.Unlock()
}

func (p *childProc) last() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.lastLine
}

// decodeLogRecord reads a record written by slog's JSON handler, keeping
// the order of its attributes. The child's time is dropped (the record is
// logged again now), "channel" is already on the parent's logger, and the
// child's "node" becomes "child_node".
func decodeLogRecord(line []byte) (level slog.Level, msg string, attrs []any, ok bool) {
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.UseNumber()
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return 0, "", nil, false
	}
	level, haveMsg := slog.LevelInfo, false
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return 0, "", nil, false
		}
		key, _ := t.(string)
		var v any
		if err := dec.Decode(&v); err != nil {
			return 0, "", nil, false
		}
		switch key {
		case slog.TimeKey, "channel":
		case slog.LevelKey:
			if s, ok := v.(string); !ok || level.UnmarshalText([]byte(s)) != nil {
				level = slog.LevelInfo
			}
		case slog.MessageKey:
			msg, haveMsg = fmt.Sprint(v), true
		case "node":
			attrs = append(attrs, "child_node", v)
		default:
			attrs = append(attrs, key, v)
		}
	}
	if _, err := dec.Token(); err != nil || !haveMsg {
		return 0, "", nil, false
	}
	if _, err := dec.Token(); err != io.EOF {
		return 0, "", nil, false // more than one value on the line
	}
	return level, msg, attrs, true
}

// exitDescription says how a child process ended, from Wait's error.
func exitDescription(err error) string {
	if err == nil {
		return "exit code 0"
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if code := ee.ExitCode(); code >= 0 {
			return fmt.Sprintf("exit code %d", code)
		}
		return ee.ProcessState.String() // "signal: killed"
	}
	return err.Error()
}

// childNodeName is the node name of a child started by parent for
// channel: parent/channel/random, unique per start, at most maxNodeName
// characters (the parent's name is cut from the front).
func childNodeName(parent, channel string) string {
	var b [2]byte
	_, _ = rand.Read(b[:])
	name := parent + "/" + channel + "/" + hex.EncodeToString(b[:])
	if len(name) > maxNodeName {
		name = name[len(name)-maxNodeName:]
	}
	return name
}

// childExit is what a child that ended by itself signals to tests.
type childExit struct {
	Channel string
	PID     int
	Exit    string
}
