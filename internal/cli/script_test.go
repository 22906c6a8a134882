package cli

import (
	"context"
	"os"
	"os/exec"
	"strconv"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"
	"golang.org/x/term"
)

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"msync": func() {
			os.Exit(Run(context.Background(), os.Args[1:], Env{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr,
				IsTerminal: term.IsTerminal(int(os.Stderr.Fd()))}))
		},
	})
}

// TestScripts runs the CLI scripts in testdata/script. Besides testscript's
// own commands they have "rc N prog args...", which runs a program and
// fails unless it exits with status N.
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir: "testdata/script",
		Setup: func(env *testscript.Env) error {
			env.Setenv("XDG_STATE_HOME", env.WorkDir+"/.state")
			if os.Getenv("CI") != "" {
				env.Setenv("CI", "true")
			}
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"rc": func(ts *testscript.TestScript, neg bool, args []string) {
				if neg || len(args) < 2 {
					ts.Fatalf("usage: rc N program [args...]")
				}
				want, err := strconv.Atoi(args[0])
				if err != nil {
					ts.Fatalf("rc: %v", err)
				}
				path, err := exec.LookPath(args[1])
				if err != nil {
					ts.Fatalf("rc: %v", err)
				}
				cmd := exec.Command(path, args[2:]...)
				cmd.Dir = ts.Getenv("WORK")
				cmd.Env = append(os.Environ(), "XDG_STATE_HOME="+ts.Getenv("XDG_STATE_HOME"), "HOME="+ts.Getenv("HOME"))
				cmd.Stdout, cmd.Stderr = ts.Stdout(), ts.Stderr()
				err = cmd.Run()
				got := 0
				if ee, ok := err.(*exec.ExitError); ok {
					got = ee.ExitCode()
				} else if err != nil {
					ts.Fatalf("rc: %v", err)
				}
				if got != want {
					ts.Fatalf("%s exited %d, want %d", args[1], got, want)
				}
			},
		},
	})
}
