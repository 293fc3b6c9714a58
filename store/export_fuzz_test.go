package store

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzCheckExport feeds import's checking pass arbitrary files, seeded
// (testdata/fuzz/FuzzCheckExport) with exports of fillExportFixture's
// store: whatever the file, it never panics and refuses only with
// ErrInvalid, naming a line. (The seeds are static files: building the
// fixture in every fuzzing process costs more than a CI budget.)
func FuzzCheckExport(f *testing.F) {
	f.Add([]byte("{\"format\":\"ssogate-export\",\"version\":1,\"orgs\":[]}\n{\"type\":\"end\",\"records\":0}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		h, counts, err := CheckExport(bytes.NewReader(data))
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("CheckExport refused with %v, not ErrInvalid", err)
			}
			if !bytes.Contains([]byte(err.Error()), []byte("line ")) && !bytes.Contains([]byte(err.Error()), []byte("empty file")) {
				t.Fatalf("refusal names no line: %v", err)
			}
			return
		}
		if h.Format != ExportFormat || h.Version != ExportVersion || counts == nil {
			t.Fatalf("accepted header %+v, counts %v", h, counts)
		}
	})
}
