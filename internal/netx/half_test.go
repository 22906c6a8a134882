package netx

import (
	"io"
	"net"
	"testing"
	"time"
)

// CloseWrite half-closes a TCP connection (the peer reads the end while
// the connection still reads) and leaves a pipe, which cannot, alone;
// the deadline helpers reach a connection that has deadlines.
func TestHalfCloseAndDeadlines(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Write([]byte("bye")); err != nil {
		t.Fatal(err)
	}
	if err := CloseWrite(s); err != nil {
		t.Fatal(err)
	}
	if b, err := io.ReadAll(c); err != nil || string(b) != "bye" {
		t.Fatalf("peer read %q, %v; want the end after bye", b, err)
	}
	if _, err := c.Write([]byte("still read")); err != nil {
		t.Fatal(err)
	}
	if err := SetReadDeadline(s, time.Now().Add(5*time.Second)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 10)
	if _, err := io.ReadFull(s, buf); err != nil || string(buf) != "still read" {
		t.Fatalf("half-closed side read %q, %v", buf, err)
	}
	if err := SetDeadline(s, time.Now().Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Read(buf); err == nil {
		t.Error("a read past the deadline succeeded")
	}
	a, b := io.Pipe()
	if err := CloseWrite(struct{ io.Reader }{a}); err != nil || SetDeadline(b, time.Now()) != nil {
		t.Error("a stream without half-close or deadlines is not left alone")
	}
}
