package mountinfo

import "testing"

func TestUnescape(t *testing.T) {
	for in, want := range map[string]string{`/a\040b`: "/a b", `/plain`: "/plain", `/x\`: `/x\`, `/t\011x`: "/t\tx"} {
		if got := Unescape(in); got != want {
			t.Errorf("Unescape(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestReadFindsRoot(t *testing.T) {
	m, ok, err := At("/")
	if err != nil || !ok {
		t.Fatalf("At(/) = %v, %v, %v", m, ok, err)
	}
	if m.FSType == "" {
		t.Errorf("root mount has no type: %+v", m)
	}
}
