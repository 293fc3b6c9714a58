package configurator

import (
	"fmt"
	"testing"
)

func TestFlashesShownOnce(t *testing.T) {
	f := NewFlashes()
	id, err := f.Put("s1", "token")
	if err != nil {
		t.Fatal(err)
	}
	if v := f.Take("s2", id); v != nil {
		t.Errorf("another session read the flash: %v", v)
	}
	if v := f.Take("s1", id+"x"); v != nil {
		t.Errorf("a wrong ID read the flash: %v", v)
	}
	if v := f.Take("s1", id); v != "token" {
		t.Errorf("first read: %v", v)
	}
	if v := f.Take("s1", id); v != nil {
		t.Errorf("second read (a reload): %v", v)
	}
	if v := f.Take("s1", ""); v != nil {
		t.Errorf("empty ID: %v", v)
	}
}

func TestFlashesOneSlotPerSession(t *testing.T) {
	f := NewFlashes()
	old, _ := f.Put("s", "first")
	cur, _ := f.Put("s", "second")
	if v := f.Take("s", old); v != nil {
		t.Errorf("replaced flash still readable: %v", v)
	}
	if v := f.Take("s", cur); v != "second" {
		t.Errorf("current flash: %v", v)
	}
}

func TestFlashesBounded(t *testing.T) {
	f := NewFlashes()
	for i := range maxFlashes + 100 {
		if _, err := f.Put(fmt.Sprint("s", i), i); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(f.m); n > maxFlashes {
		t.Errorf("%d flashes kept, bound is %d", n, maxFlashes)
	}
}
