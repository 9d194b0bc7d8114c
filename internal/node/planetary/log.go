package planetary

import (
	"context"
	"fmt"
	"log/slog"
)

// logger adapts slog to the yggdrasil library's logger, handing link
// events to peers (nil: none) first.
type logger struct {
	l     *slog.Logger
	peers *peers
}

func (g logger) out(level slog.Level, msg string) { g.l.Log(context.Background(), level, msg) }

func (g logger) Printf(f string, a ...interface{}) { g.out(slog.LevelInfo, fmt.Sprintf(f, a...)) }
func (g logger) Println(a ...interface{})          { g.out(slog.LevelInfo, fmt.Sprint(a...)) }
func (g logger) Infof(f string, a ...interface{}) {
	if g.peers != nil {
		g.peers.event(f, a)
	}
	g.out(slog.LevelInfo, fmt.Sprintf(f, a...))
}
func (g logger) Infoln(a ...interface{})           { g.out(slog.LevelInfo, fmt.Sprint(a...)) }
func (g logger) Warnf(f string, a ...interface{})  { g.out(slog.LevelWarn, fmt.Sprintf(f, a...)) }
func (g logger) Warnln(a ...interface{})           { g.out(slog.LevelWarn, fmt.Sprint(a...)) }
func (g logger) Errorf(f string, a ...interface{}) { g.out(slog.LevelError, fmt.Sprintf(f, a...)) }
func (g logger) Errorln(a ...interface{})          { g.out(slog.LevelError, fmt.Sprint(a...)) }
func (g logger) Debugf(f string, a ...interface{}) { g.out(slog.LevelDebug, fmt.Sprintf(f, a...)) }
func (g logger) Debugln(a ...interface{})          { g.out(slog.LevelDebug, fmt.Sprint(a...)) }
func (g logger) Traceln(a ...interface{})          {}
