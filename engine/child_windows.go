//go:build windows

package engine

import (
	"os"
	"os/exec"
	"syscall"
)

// setChildAttributes starts a channel's child process in a new process
// group, which Ctrl+C in the console does not reach: the service stops its
// children in order.
func setChildAttributes(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.CreationFlags |= syscall.CREATE_NEW_PROCESS_GROUP
}

// askToStop does nothing on Windows, which has no SIGTERM: the closed
// standard input is the request to stop, and Process.Kill follows after
// the timeout.
func askToStop(*os.Process) error { return nil }
