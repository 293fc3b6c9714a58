package caddymodule

import "testing"

// No identity header value can be read as two by an upstream that splits
// on commas: a user or address with a comma (a record from before
// addresses were checked) is left out, group names keep their commas
// percent-encoded.
func TestIdentityHeaderValuesNeverSplit(t *testing.T) {
	v := identity{
		User:   "alice@example.com, mallory@example.com",
		Email:  "alice@example.com,mallory@example.com",
		Name:   "Liddell, Alice",
		Groups: []string{"admins", "Sales, EMEA", "100%", "a%2Cb"},
	}.values()
	if v.header[1] != "" || v.header[2] != "" || v.repl[1] != "" || v.repl[2] != "" {
		t.Errorf("user/email with a comma passed on: %q %q", v.header[1], v.header[2])
	}
	if got, want := v.header[4], "admins,Sales%2C EMEA,100%25,a%252Cb"; got != want {
		t.Errorf("groups header = %q, want %q", got, want)
	}
	if v.header[3] != "Liddell, Alice" {
		t.Errorf("display name = %q", v.header[3])
	}
	ok := identity{User: "alice@example.com", Email: "Alice@example.com", Groups: []string{"a", "b"}}.values()
	if ok.header[1] != "alice@example.com" || ok.header[2] != "Alice@example.com" || ok.header[4] != "a,b" {
		t.Errorf("plain values changed: %q", ok.header)
	}
}
