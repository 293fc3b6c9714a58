package pgschema

import "testing"

// The embedded files form a gapless sequence starting at 1.
func TestMigrations(t *testing.T) {
	ms, err := Migrations()
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) == 0 || ms[0].Version != 1 || Latest() != len(ms) {
		t.Fatalf("migrations %+v, latest %d", ms, Latest())
	}
	for _, m := range ms {
		if m.SQL == "" {
			t.Errorf("%s is empty", m.Name)
		}
	}
}
