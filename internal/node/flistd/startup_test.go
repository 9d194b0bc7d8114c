package flistd

import (
	"reflect"
	"testing"
)

func TestParseStartup(t *testing.T) {
	tests := []struct {
		name, in string
		want     *Startup
		err      bool
	}{
		{"tables", `
[startup.entry]
name = "core.system"
[startup.entry.args]
name = "/bin/app"   # the program
args = [
  "a b",   # spaces kept
  'C:\raw',
]
dir = "/srv"
[startup.entry.args.env]
"QUOTED.KEY" = "v"
ESC = "tab\there \"q\" \u00e9"
`, &Startup{Name: "/bin/app", Args: []string{"a b", `C:\raw`}, Dir: "/srv",
			Env: map[string]string{"QUOTED.KEY": "v", "ESC": "tab\there \"q\" é"}}, false},
		{"dotted keys and inline env", `
[startup]
entry.args.name = "/app"
entry.args.env = { A = "1", B = "2" }
entry.args.args = []
`, &Startup{Name: "/app", Args: nil, Env: map[string]string{"A": "1", "B": "2"}}, false},
		{"other values ignored", `
[startup.entry]
name = "x"
recurring = true
[startup.entry.args]
name = "/app"
[other]
n = 1.5
when = 1979-05-27T07:32:00Z
`, &Startup{Name: "/app", Env: map[string]string{}}, false},
		{"no entry", "[startup]\n", nil, false},
		{"empty", "", nil, false},
		{"entry without a program", "[startup.entry]\nname = \"x\"\n", nil, true},
		{"args not strings", "[startup.entry.args]\nname = \"/a\"\nargs = [1, 2]\n", nil, true},
		{"name not a string", "[startup.entry.args]\nname = 3\n", nil, true},
		{"env nested", "[startup.entry.args]\nname = \"/a\"\nenv = { A = { B = \"x\" } }\n", nil, true},
		{"duplicate key", "[startup.entry.args]\nname = \"/a\"\nname = \"/b\"\n", nil, true},
		{"duplicate table", "[a]\n[a]\n", nil, true},
		{"unterminated", "[startup.entry.args]\nname = \"/a\n", nil, true},
		{"bad escape", "a = \"\\q\"\n", nil, true},
		{"multi-line string", "a = \"\"\"x\"\"\"\n", nil, true},
		{"array of tables", "[[startup]]\n", nil, true},
		{"junk after value", "a = \"x\" y\n", nil, true},
		{"no value", "a =\n", nil, true},
		{"not utf-8", "a = \"\xff\"\n", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseStartup([]byte(tt.in))
			if (err != nil) != tt.err {
				t.Fatalf("ParseStartup error = %v, want error %v", err, tt.err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseStartup = %+v, want %+v", got, tt.want)
			}
		})
	}
}

// FuzzStartup: the parser reads files from flists anyone publishes; it must
// never panic or hang.
func FuzzStartup(f *testing.F) {
	f.Add([]byte("[startup.entry.args]\nname = \"/a\"\nargs = [\"x\", 'y']\nenv = { A = \"1\" }\n"))
	f.Add([]byte("a.b.\"c\" = [[1, 2], [\"x\"]]\n# c\n[t]\nk = \"\\u00e9\"\n"))
	f.Add([]byte("[[x]]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := ParseStartup(data)
		if err == nil && st != nil && st.Name == "" {
			t.Errorf("startup without a name accepted: %+v", st)
		}
	})
}
