package pgstore_test

import (
	"context"
	"net"
	"net/url"
	"sync"
	"testing"
	"time"

	"keycard/access"
	"keycard/internal/storetest"
	pgstore "keycard/store/postgres"
)

// TestSilentNetworkLoss: when the network to PostgreSQL drops every packet
// without resetting the connections, a write does not hang until TCP gives
// up: it fails as unavailable after TxTimeout, commits nothing, and the
// store works again once the network is back.
func TestSilentNetworkLoss(t *testing.T) {
	dbURL := storetest.FreshDatabase(t, storetest.PostgresURL(t))
	p := newDropProxy(t, dbURL)
	db, err := pgstore.Open(context.Background(), p.url, pgstore.Options{TxTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	set := func(v string) error {
		return db.Update(t0, func(tx *pgstore.Tx) error { return tx.SetCursor("silent", v) })
	}
	if err := set("before"); err != nil {
		t.Fatal(err)
	}

	p.drop(true)
	done := make(chan error, 1)
	go func() { done <- set("during") }()
	select {
	case err = <-done:
	case <-time.After(20 * time.Second):
		p.drop(false) // let the deferred Close finish
		t.Fatal("a write on a silent network did not return within 20s (TxTimeout is 300ms)")
	}
	if access.CodeOf(err) != access.CodeUnavailable || access.MessageOf(err) != pgstore.Unavailable {
		t.Fatalf("err = %v (code %s, message %q), want unavailable with %q", err, access.CodeOf(err), access.MessageOf(err), pgstore.Unavailable)
	}

	p.drop(false)
	var got string
	if err := db.View(func(tx *pgstore.Tx) error { var err error; got, err = tx.Cursor("silent"); return err }); err != nil {
		t.Fatal(err)
	}
	if got != "before" {
		t.Fatalf("cursor = %q after the failed write, want %q: the write that failed must not commit", got, "before")
	}
	if err := set("after"); err != nil {
		t.Fatalf("write after the network is back: %v", err)
	}
}

// dropProxy is a loopback TCP proxy in front of PostgreSQL that can drop
// every byte in both directions while keeping the connections open, as a
// network that loses packets does. Connections that lost bytes are closed
// when dropping stops (their streams are broken); new ones work.
type dropProxy struct {
	url    string
	target string
	mu     sync.Mutex
	on     bool
	broken map[net.Conn]bool
	conns  map[net.Conn]bool
}

func newDropProxy(t *testing.T, dbURL string) *dropProxy {
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &dropProxy{target: u.Host, broken: map[net.Conn]bool{}, conns: map[net.Conn]bool{}}
	u.Host = ln.Addr().String()
	p.url = u.String()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", p.target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns[c], p.conns[up] = true, true
			p.mu.Unlock()
			go p.pipe(c, up)
			go p.pipe(up, c)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		defer p.mu.Unlock()
		for c := range p.conns {
			c.Close()
		}
	})
	return p
}

func (p *dropProxy) pipe(dst, src net.Conn) {
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			if p.on {
				p.broken[src], p.broken[dst] = true, true
				p.mu.Unlock()
				continue
			}
			p.mu.Unlock()
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil { // io.EOF or a closed connection: both sides end
			return
		}
	}
}

func (p *dropProxy) drop(on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.on = on
	if !on {
		for c := range p.broken {
			c.Close()
		}
		p.broken = map[net.Conn]bool{}
	}
}
