//go:build unix

package engine

import (
	"os"
	"os/exec"
	"syscall"
)

// setChildAttributes puts a channel's child process in its own process
// group, so that a Ctrl+C in a terminal reaches only the service, which
// then stops its children in order.
func setChildAttributes(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
}

// askToStop sends the child SIGTERM, on which hermod stops cleanly.
func askToStop(p *os.Process) error { return p.Signal(syscall.SIGTERM) }
