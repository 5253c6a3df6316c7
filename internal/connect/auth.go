package connect

import (
	"github.com/nats-io/nats.go"

	"github.com/miniray/miniray/internal/config"
)

// Options turns the NATS client settings into connection options. Credentials
// in the URL are taken by the client library itself; a user from the settings
// wins over them.
func Options(c config.NATSClient) []nats.Option {
	var opts []nats.Option
	if c.User != "" {
		opts = append(opts, nats.UserInfo(c.User, c.Password))
	}
	if c.Creds != "" {
		opts = append(opts, nats.UserCredentials(c.Creds))
	}
	if c.CA != "" {
		opts = append(opts, nats.RootCAs(c.CA))
	}
	return opts
}
