package tracking

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"

	"github.com/nats-io/nats.go"
)

// WithNATSOptions adds options to the connection that [Connect] makes, such as
// credentials or TLS trust. They come after miniray's own and so win over them.
func WithNATSOptions(opts ...nats.Option) ClientOption {
	return func(c *clientConfig) { c.natsOpts = append(c.natsOpts, opts...) }
}

// EnvNATSOptions returns the connection options that a job's environment asks for:
//
//   - MINIRAY_NATS_USER and MINIRAY_NATS_PASSWORD: a user and its password; a user
//     and password in MINIRAY_NATS_URL (nats://job:secret@host:4222) work as well;
//   - MINIRAY_NATS_CREDS: a credentials file (JWT and nkey seed) instead;
//   - MINIRAY_NATS_CA: a PEM file of the CAs that sign the server's certificate,
//     which turns TLS on.
//
// [Default] uses them; a program that calls [Connect] itself passes them with
// [WithNATSOptions].
func EnvNATSOptions() ([]nats.Option, error) {
	user := os.Getenv("MINIRAY_NATS_USER")
	password := os.Getenv("MINIRAY_NATS_PASSWORD")
	creds := os.Getenv("MINIRAY_NATS_CREDS")
	ca := os.Getenv("MINIRAY_NATS_CA")

	var opts []nats.Option
	switch {
	case password != "" && user == "":
		return nil, errors.New("MINIRAY_NATS_PASSWORD is set without MINIRAY_NATS_USER")
	case user != "" && creds != "":
		return nil, errors.New("MINIRAY_NATS_USER and MINIRAY_NATS_CREDS are both set;" +
			" use one or the other")
	case user != "":
		opts = append(opts, nats.UserInfo(user, password))
	case creds != "":
		if _, err := os.Stat(creds); err != nil {
			return nil, fmt.Errorf("MINIRAY_NATS_CREDS: %w", err)
		}
		opts = append(opts, nats.UserCredentials(creds))
	}
	if ca != "" {
		if _, err := os.Stat(ca); err != nil {
			return nil, fmt.Errorf("MINIRAY_NATS_CA: %w", err)
		}
		opts = append(opts, nats.RootCAs(ca))
	}
	return opts, nil
}

// redact hides passwords in a list of NATS URLs, for error messages.
func redact(urls string) string {
	parts := strings.Split(urls, ",")
	for i, p := range parts {
		u, err := url.Parse(strings.TrimSpace(p))
		if err != nil || u.User == nil {
			continue
		}
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
		} else {
			u.User = url.User("xxxxx")
		}
		parts[i] = u.String()
	}
	return strings.Join(parts, ",")
}
