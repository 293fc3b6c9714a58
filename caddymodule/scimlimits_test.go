package caddymodule

import (
	"testing"
)

func TestSCIMLimitsCaddyfile(t *testing.T) {
	cfg, err := adapt(t, `{
	sso {
		base_url https://app.example.com
		scim_limits {
			max_request_size  1MiB
			max_resource_size 32KiB
			max_page_size     1MiB
			max_filter_depth  8
			max_users         500
			max_stored_bytes  4GiB
			max_concurrent    2
		}
	}
}
:80
`)
	if err != nil {
		t.Fatal(err)
	}
	l, _ := cfg["apps"].(map[string]any)["sso"].(map[string]any)["scim_limits"].(map[string]any)
	want := map[string]float64{"max_request_size": 1 << 20, "max_resource_size": 32 << 10, "max_page_size": 1 << 20, "max_filter_depth": 8, "max_users": 500, "max_stored_bytes": 4 << 30, "max_concurrent": 2}
	if len(l) != len(want) {
		t.Fatalf("scim_limits = %v", l)
	}
	for k, v := range want {
		if l[k] != v {
			t.Errorf("%s = %v, want %v", k, l[k], v)
		}
	}
	for _, bad := range []string{
		"max_filter_depth 65",
		"max_filter_depth -1",
		"max_json_depth 4",
		"max_users 0",
		"max_page_size lots",
		"max_request_size 2GiB",
		"max_users 1 2",
		"max_stored_bytes 0",
		"max_stored_bytes -1GiB",
		"max_stored_bytes plenty",
		"bogus 1",
	} {
		src := "{\n sso {\n scim_limits {\n " + bad + "\n }\n }\n}\n:80\n"
		if _, err := adapt(t, src); err == nil {
			t.Errorf("%q: want an error", bad)
		}
	}
}
