// Package cli is zosctl, the command line of users and farmers, written as a
// library: Run takes the arguments and the standard streams, so tests drive
// it in-process. One file per command group; the table below wires them.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/zos-go/zos/internal/version"
)

// Env is what a command may touch of the outside world.
type Env struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	// Getenv reads the environment; nil means os.Getenv.
	Getenv func(string) string
	// IsTerminal reports whether Stdout is a terminal (live progress
	// displays); nil means no.
	IsTerminal func() bool
}

func (e *Env) getenv(k string) string {
	if e.Getenv == nil {
		return os.Getenv(k)
	}
	return e.Getenv(k)
}

func (e *Env) terminal() bool { return e.IsTerminal != nil && e.IsTerminal() }

// command is one node of the command tree: a group (with subs) or a leaf
// (with run).
type command struct {
	name    string
	usage   string // arguments synopsis, for leaves
	summary string
	run     func(ctx context.Context, env *Env, args []string) error
	subs    []*command
}

// errUsage marks errors that should be followed by the command's usage.
var errUsage = errors.New("usage")

// usageError returns an error that prints usage.
func usageError(format string, a ...any) error {
	return fmt.Errorf("%w: %s", errUsage, fmt.Sprintf(format, a...))
}

// root returns the whole command tree. Each group lives in its own file.
func root() *command {
	return &command{
		name: "zosctl",
		subs: []*command{
			keyCommand(),
			deploymentCommand(),
			deployCommand(),
			logsCommand(),
			twinCommand(),
			farmCommand(),
			nodeCommand(),
			contractCommand(),
			pricingCommand(),
			balanceCommand(),
			depositCommand(),
			transferCommand(),
			nameCommand(),
			flistCommand(),
			releaseCommand(),
			networkCommand(),
			imageCommand(),
			qsfsCommand(),
			{name: "version", summary: "print the zosctl version", run: func(_ context.Context, env *Env, _ []string) error {
				fmt.Fprintln(env.Stdout, version.String())
				return nil
			}},
		},
	}
}

// Run executes zosctl with args (without the program name) and returns the
// process exit code.
func Run(ctx context.Context, args []string, env Env) int {
	if env.Stdin == nil {
		env.Stdin = strings.NewReader("")
	}
	if env.Stdout == nil {
		env.Stdout = io.Discard
	}
	if env.Stderr == nil {
		env.Stderr = io.Discard
	}
	if len(args) >= 2 && args[0] == "deploy" && (args[1] == "-f" || strings.HasPrefix(args[1], "-f=") || strings.HasPrefix(args[1], "--f")) {
		args = append([]string{"deploy", "file"}, args[1:]...)
	}
	cmd, rest, path := resolve(root(), args)
	if cmd.run == nil || (len(rest) > 0 && (rest[0] == "-h" || rest[0] == "--help" || rest[0] == "help")) {
		printHelp(env.Stdout, cmd, path)
		if cmd.run == nil && len(rest) > 0 && rest[0] != "-h" && rest[0] != "--help" && rest[0] != "help" {
			fmt.Fprintf(env.Stderr, "zosctl: unknown command %q\n", strings.Join(append(path, rest[0]), " "))
			return 2
		}
		return 0
	}
	if err := cmd.run(ctx, &env, rest); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(env.Stderr, "zosctl %s: %v\n", strings.Join(path[1:], " "), err)
		if errors.Is(err, errUsage) {
			fmt.Fprintf(env.Stderr, "usage: %s %s\n", strings.Join(path, " "), cmd.usage)
			return 2
		}
		return 1
	}
	return 0
}

func resolve(c *command, args []string) (*command, []string, []string) {
	path := []string{c.name}
	for len(args) > 0 && c.run == nil {
		var next *command
		for _, s := range c.subs {
			if s.name == args[0] {
				next = s
			}
		}
		if next == nil {
			break
		}
		c, args = next, args[1:]
		path = append(path, c.name)
	}
	return c, args, path
}

func printHelp(w io.Writer, c *command, path []string) {
	if c.run != nil {
		fmt.Fprintf(w, "usage: %s %s\n\n%s\n", strings.Join(path, " "), c.usage, c.summary)
		return
	}
	fmt.Fprintf(w, "usage: %s <command> [arguments]\n\ncommands:\n", strings.Join(path, " "))
	subs := append([]*command(nil), c.subs...)
	sort.Slice(subs, func(i, j int) bool { return subs[i].name < subs[j].name })
	for _, s := range subs {
		fmt.Fprintf(w, "  %-14s %s\n", s.name, s.summary)
	}
}

// parseFlags parses args with fs, allowing flags after positional arguments
// (zosctl deployment verify FILE --twin-key ...). It returns the positional
// arguments.
func parseFlags(fs *flag.FlagSet, env *Env, args []string) ([]string, error) {
	fs.SetOutput(env.Stderr)
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// configDir is where zosctl keeps its files: $ZOSCTL_HOME, else
// $XDG_CONFIG_HOME/zosctl, else ~/.config/zosctl.
func configDir(env *Env) string {
	if d := env.getenv("ZOSCTL_HOME"); d != "" {
		return d
	}
	if d := env.getenv("XDG_CONFIG_HOME"); d != "" {
		return filepath.Join(d, "zosctl")
	}
	if h := env.getenv("HOME"); h != "" {
		return filepath.Join(h, ".config", "zosctl")
	}
	return ".zosctl"
}

// multiFlag is a repeatable string flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }
