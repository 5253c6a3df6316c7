package config

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
)

// MinTokenLength is the shortest bearer token accepted: a short token can be
// guessed by trying.
const MinTokenLength = 16

// HTTPTLSSettings configure HTTPS on a program's HTTP listener.
var HTTPTLSSettings = []Setting{
	{Key: "http_tls_cert", Default: "",
		Usage: "PEM certificate (chain) of the HTTP listener; with http_tls_key it serves HTTPS"},
	{Key: "http_tls_key", Default: "", Usage: "PEM private key of http_tls_cert"},
	{Key: "allow_insecure_bind", Default: false,
		Usage: "allow listening beyond loopback without a token"},
}

// NATSClientSettings are the credentials and trust of a program's NATS
// connection. A user and password in the URL itself work as well.
var NATSClientSettings = []Setting{
	{Key: "nats_user", Default: "", Usage: "NATS user name"},
	{Key: "nats_password", Default: "", Usage: "password of nats_user"},
	{Key: "nats_creds", Default: "",
		Usage: "NATS credentials file (JWT and nkey seed), instead of a user and password"},
	{Key: "nats_ca", Default: "",
		Usage: "PEM file of the CAs that sign the NATS server's certificate; turns on TLS"},
}

// NATSClient are the NATS client settings; the zero value connects without
// credentials and with the system's trust.
type NATSClient struct {
	User     string
	Password string
	Creds    string
	CA       string
}

// NATSClient reads [NATSClientSettings].
func (vals *Values) NATSClient() NATSClient {
	c := NATSClient{
		User:     vals.String("nats_user"),
		Password: vals.String("nats_password"),
		Creds:    vals.String("nats_creds"),
		CA:       vals.String("nats_ca"),
	}
	if c.Password != "" && c.User == "" {
		vals.Fail("nats_password", "set without nats_user")
	}
	if c.Creds != "" && c.User != "" {
		vals.Fail("nats_creds", "set together with nats_user; use one or the other")
	}
	if c.Creds != "" {
		if _, err := os.Stat(c.Creds); err != nil {
			vals.Fail("nats_creds", "%w", err)
		}
	}
	if c.CA != "" {
		if _, err := CertPool(c.CA); err != nil {
			vals.Fail("nats_ca", "%w", err)
		}
	}
	return c
}

// Token returns a bearer token setting: empty, or at least [MinTokenLength]
// printable characters without spaces, so that it fits an Authorization header and
// a cookie unchanged.
func (vals *Values) Token(key string) string {
	t := vals.String(key)
	if t == "" {
		return ""
	}
	if len(t) < MinTokenLength {
		vals.Fail(key, "token is %d characters long; want at least %d", len(t), MinTokenLength)
	}
	for _, r := range t {
		if r <= ' ' || r > '~' || r == ';' || r == ',' || r == '"' || r == '\\' {
			vals.Fail(key, "token holds %q; want printable ASCII without spaces, quotes,"+
				" commas, semicolons or backslashes", r)
			break
		}
	}
	return t
}

// TLS reads a pair of certificate and key file settings and loads them: nil when
// both are empty. One without the other, or files that do not load, are errors.
func (vals *Values) TLS(certKey, keyKey string) *tls.Config {
	cert, key := vals.String(certKey), vals.String(keyKey)
	switch {
	case cert == "" && key == "":
		return nil
	case cert == "":
		vals.Fail(keyKey, "set without %s: both are needed", certKey)
		return nil
	case key == "":
		vals.Fail(certKey, "set without %s: both are needed", keyKey)
		return nil
	}
	pair, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		vals.Fail(certKey, "load certificate and key: %w", err)
		return nil
	}
	return &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
}

// CertPool reads a PEM file of CA certificates.
func CertPool(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s holds no PEM certificate", file)
	}
	return pool, nil
}

// ErrInsecureBind is returned when a program would serve beyond loopback without
// authentication and allow_insecure_bind does not say it may.
var ErrInsecureBind = errors.New("listening beyond loopback without authentication")

// CheckBind fails key when addr is not a loopback address, the listener has no
// authentication and allow_insecure_bind is not set; auth names the settings that
// would give it some. It returns whether the listener is open: reachable without
// authentication.
func (vals *Values) CheckBind(key, addr string, authenticated bool, auth string) (open bool) {
	if authenticated {
		return false
	}
	if !Loopback(addr) && !vals.Bool("allow_insecure_bind") {
		vals.fail(key, fmt.Errorf("%w: %s; set %s, listen on 127.0.0.1, or set"+
			" allow_insecure_bind", ErrInsecureBind, addr, auth))
	}
	return true
}

// Redact hides the password of every URL in a comma-separated list of NATS URLs,
// for logs and error messages.
func Redact(urls string) string {
	parts := strings.Split(urls, ",")
	for i, p := range parts {
		scheme, rest, ok := strings.Cut(strings.TrimSpace(p), "://")
		if !ok {
			continue
		}
		at := strings.LastIndex(rest, "@")
		if at < 0 {
			continue
		}
		userinfo, host := rest[:at], rest[at+1:]
		user, _, hasPass := strings.Cut(userinfo, ":")
		if hasPass {
			userinfo = user + ":xxxxx"
		} else {
			userinfo = "xxxxx" // a token alone
		}
		parts[i] = scheme + "://" + userinfo + "@" + host
	}
	return strings.Join(parts, ",")
}
