package main

import (
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"kmsd/internal/syncbuf"
)

// TestLogLinesBatchWhenBusy: a line after a quiet spell is written at
// once; lines close behind it wait at most logFlushDelay; Close writes
// what is left.
func TestLogLinesBatchWhenBusy(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var out syncbuf.Buffer
		ls := &logSetup{w: &out}
		ls.buffer()
		ls.Write([]byte("one\n"))
		if got := out.String(); got != "one\n" {
			t.Fatalf("first line not written at once: %q", got)
		}
		ls.Write([]byte("two\n"))
		ls.Write([]byte("three\n"))
		if got := out.String(); got != "one\n" {
			t.Fatalf("lines right behind another were written at once: %q", got)
		}
		time.Sleep(logFlushDelay)
		synctest.Wait()
		if got := out.String(); got != "one\ntwo\nthree\n" {
			t.Fatalf("after %v: %q", logFlushDelay, got)
		}
		time.Sleep(logFlushDelay / 2)
		ls.Write([]byte("four\n")) // less than logFlushDelay after the flush
		ls.Close()
		if got := out.String(); !strings.HasSuffix(got, "three\nfour\n") {
			t.Fatalf("Close did not write the buffered line: %q", got)
		}
		time.Sleep(2 * logFlushDelay)
		ls.Write([]byte("five\n")) // quiet again: at once
		if got := out.String(); !strings.HasSuffix(got, "four\nfive\n") {
			t.Fatalf("line after a quiet spell: %q", got)
		}
	})
}
