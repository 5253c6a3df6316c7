package tests

import (
	"io"
	"net"
	"sync"
	"testing"
)

// cutProxy is a TCP proxy on loopback that can cut a job off from NATS the way a
// network partition does: cut closes every connection through it and refuses new
// ones (accepts and closes them at once) until restore.
type cutProxy struct {
	t      *testing.T
	ln     net.Listener
	target string

	mu    sync.Mutex
	cut   bool
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

// startProxy listens on a free loopback port and forwards each connection to target.
// The test's cleanup stops it and closes every connection.
func startProxy(t *testing.T, target string) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{t: t, ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	p.wg.Go(p.accept)
	t.Cleanup(func() {
		ln.Close()
		p.cutOff()
		p.wg.Wait()
	})
	return p
}

// addr returns the proxy's host:port.
func (p *cutProxy) addr() string { return p.ln.Addr().String() }

// cutOff closes every connection through the proxy and refuses new ones.
func (p *cutProxy) cutOff() {
	p.mu.Lock()
	p.cut = true
	p.mu.Unlock()
	p.closeAll()
}

// restore lets connections through again.
func (p *cutProxy) restore() {
	p.mu.Lock()
	p.cut = false
	p.mu.Unlock()
}

func (p *cutProxy) closeAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.Close()
	}
	clear(p.conns)
}

func (p *cutProxy) accept() {
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return // the listener was closed by the cleanup
		}
		p.mu.Lock()
		if p.cut {
			p.mu.Unlock()
			client.Close()
			continue
		}
		p.conns[client] = struct{}{}
		p.mu.Unlock()
		p.wg.Go(func() { p.pipe(client) })
	}
}

// pipe connects one client to the target and copies both ways until either side
// closes, or a cut closes both.
func (p *cutProxy) pipe(client net.Conn) {
	server, err := net.Dial("tcp", p.target)
	if err != nil {
		p.drop(client)
		return
	}
	p.mu.Lock()
	if p.cut {
		p.mu.Unlock()
		server.Close()
		p.drop(client)
		return
	}
	p.conns[server] = struct{}{}
	p.mu.Unlock()

	var both sync.WaitGroup
	both.Go(func() {
		io.Copy(server, client)
		p.drop(server)
		p.drop(client)
	})
	io.Copy(client, server)
	p.drop(client)
	p.drop(server)
	both.Wait()
}

func (p *cutProxy) drop(c net.Conn) {
	c.Close()
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
}
