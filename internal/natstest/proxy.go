package natstest

import (
	"net"
	"sync"
	"testing"
)

// Proxy forwards TCP connections from a loopback port to a target, and fails the way
// a network does when told to: Drop closes every connection, and the clients may
// connect again; Cut closes them and refuses new ones until Restore; Freeze keeps
// every connection open but passes no byte either way until Thaw, like a server that
// is up but does not answer.
type Proxy struct {
	ln     net.Listener
	target string

	mu      sync.Mutex
	refused bool
	thawed  chan struct{} // closed while bytes flow
	conns   map[net.Conn]struct{}
	wg      sync.WaitGroup
}

// StartProxy listens on a free loopback port and forwards each connection to target,
// a host:port. The test's cleanup stops it and closes every connection.
func StartProxy(tb testing.TB, target string) *Proxy {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	p := &Proxy{ln: ln, target: target, thawed: make(chan struct{}),
		conns: map[net.Conn]struct{}{}}
	close(p.thawed)
	p.wg.Go(p.accept)
	tb.Cleanup(func() {
		ln.Close()
		p.Thaw()
		p.Cut()
		p.wg.Wait()
	})
	return p
}

// Addr returns the proxy's host:port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// URL returns the proxy's address as a NATS URL.
func (p *Proxy) URL() string { return "nats://" + p.Addr() }

// Drop closes every connection through the proxy.
func (p *Proxy) Drop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.Close()
	}
	clear(p.conns)
}

// Cut closes every connection through the proxy and refuses new ones (it accepts
// and closes them at once) until Restore.
func (p *Proxy) Cut() {
	p.mu.Lock()
	p.refused = true
	p.mu.Unlock()
	p.Drop()
}

// Restore lets connections through again after Cut.
func (p *Proxy) Restore() {
	p.mu.Lock()
	p.refused = false
	p.mu.Unlock()
}

// Freeze holds every byte from now on, in both directions, until Thaw.
func (p *Proxy) Freeze() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.thawed:
		p.thawed = make(chan struct{})
	default: // frozen already
	}
}

// Thaw lets the bytes held by Freeze go.
func (p *Proxy) Thaw() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.thawed:
	default:
		close(p.thawed)
	}
}

func (p *Proxy) gate() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.thawed
}

func (p *Proxy) accept() {
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return // the listener was closed by the cleanup
		}
		p.mu.Lock()
		if p.refused {
			p.mu.Unlock()
			client.Close()
			continue
		}
		p.mu.Unlock()
		server, err := net.Dial("tcp", p.target)
		if err != nil {
			client.Close()
			continue
		}
		p.mu.Lock()
		if p.refused { // cut while dialing
			p.mu.Unlock()
			client.Close()
			server.Close()
			continue
		}
		p.conns[client], p.conns[server] = struct{}{}, struct{}{}
		p.mu.Unlock()
		p.wg.Go(func() { p.pipe(server, client) })
		p.wg.Go(func() { p.pipe(client, server) })
	}
}

// pipe copies src to dst, holding each chunk while the proxy is frozen, until either
// side closes; then it closes both.
func (p *Proxy) pipe(dst, src net.Conn) {
	defer p.forget(dst)
	defer p.forget(src)
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			<-p.gate()
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *Proxy) forget(c net.Conn) {
	c.Close()
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
}
