package boot

import (
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"
)

// modEntry is one line of the image's module list.
type modEntry struct {
	Path    string
	Name    string
	Deps    []string
	Always  bool     // load at every boot
	Aliases []string // device patterns of a driver
}

// parseLoadList reads the list the image builder wrote; bad lines are
// skipped.
func parseLoadList(data string) []modEntry {
	var out []modEntry
	for _, l := range strings.Split(data, "\n") {
		if strings.TrimSpace(l) == "" || strings.HasPrefix(l, "#") {
			continue
		}
		f := strings.Split(l, "\t")
		e := modEntry{Path: f[0]}
		e.Name = strings.ReplaceAll(strings.TrimSuffix(path.Base(e.Path), ".ko"), "-", "_")
		if len(f) > 1 && f[1] != "" {
			e.Deps = strings.Split(f[1], ",")
		}
		if len(f) > 2 {
			if strings.TrimSpace(f[2]) == "*" {
				e.Always = true
			} else {
				e.Aliases = strings.Fields(f[2])
			}
		}
		out = append(out, e)
	}
	return out
}

// matches reports whether one of the patterns matches one of the devices'
// modaliases (fnmatch, as modprobe does).
func matches(patterns, modaliases []string) bool {
	for _, p := range patterns {
		for _, m := range modaliases {
			if ok, err := path.Match(p, m); err == nil && ok {
				return true
			}
		}
	}
	return false
}

// selectModules returns, in list order, the modules to load now: those
// always loaded, the drivers of present devices, and everything they depend
// on, less those already tried.
func selectModules(list []modEntry, modaliases []string, tried map[string]bool) []modEntry {
	byName := map[string]modEntry{}
	for _, e := range list {
		byName[e.Name] = e
	}
	want := map[string]bool{}
	var add func(name string)
	add = func(name string) {
		e, ok := byName[name]
		if !ok || want[name] {
			return
		}
		want[name] = true
		for _, d := range e.Deps {
			add(d)
		}
	}
	for _, e := range list {
		if e.Always || matches(e.Aliases, modaliases) {
			add(e.Name)
		}
	}
	var out []modEntry
	for _, e := range list {
		if want[e.Name] && !tried[e.Name] {
			out = append(out, e)
		}
	}
	return out
}

// readModaliases lists the modalias of every device on every bus.
func readModaliases(sys string) []string {
	files, _ := filepath.Glob(filepath.Join(sys, "bus", "*", "devices", "*", "modalias"))
	var out []string
	for _, f := range files {
		if b, err := os.ReadFile(f); err == nil {
			if s := strings.TrimSpace(string(b)); s != "" {
				out = append(out, s)
			}
		}
	}
	return out
}

// coldplug loads modules in rounds: drivers of the devices present, then
// of the devices those drivers found (virtio-mmio exposes virtio devices,
// a SCSI host exposes disks), until a round finds nothing new.
func coldplug(dir string, list []modEntry, load func(string) error) (loaded int, failed map[string]error) {
	failed = map[string]error{}
	tried := map[string]bool{}
	for round := 0; round < 6; round++ {
		next := selectModules(list, readModaliases("/sys"), tried)
		if len(next) == 0 {
			if round > 0 {
				// Probes run asynchronously: look once more a bit later.
				time.Sleep(100 * time.Millisecond)
				if next = selectModules(list, readModaliases("/sys"), tried); len(next) == 0 {
					break
				}
			} else {
				break
			}
		}
		for _, e := range next {
			tried[e.Name] = true
			if err := load(filepath.Join(dir, e.Path)); err != nil {
				failed[e.Name] = err
				continue
			}
			loaded++
		}
	}
	return loaded, failed
}
