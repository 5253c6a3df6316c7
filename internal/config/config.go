// Package config loads the settings of miniray's programs with viper: from flags,
// from MINIRAY_* environment variables and from a YAML file, in that order of
// precedence. Every setting is declared once, with its default and meaning, so that
// flags, environment names and the checks of a file all come from one table.
package config

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cast"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"
	"go.yaml.in/yaml/v3"
)

// EnvPrefix is the prefix of every environment variable miniray reads.
const EnvPrefix = "MINIRAY"

// Setting declares one setting.
type Setting struct {
	// Key is the YAML key; the env var is MINIRAY_ and the key in upper case, the
	// flag is the key with dashes.
	Key string
	// Default is a string, int, bool or time.Duration; its type is the setting's.
	Default any
	Usage   string
}

// Flag returns the setting's flag name.
func (s Setting) Flag() string { return strings.ReplaceAll(s.Key, "_", "-") }

// Env returns the setting's environment variable.
func (s Setting) Env() string { return EnvPrefix + "_" + strings.ToUpper(s.Key) }

// ErrUsage marks errors in the command line, the environment or the config file: the
// program should exit with code 2.
var ErrUsage = errors.New("usage")

// ErrHelp is returned by [Load] when -h or --help was asked for; usage was printed.
var ErrHelp = pflag.ErrHelp

// Values are loaded settings. Its getters record the first bad value; check [Values.Err]
// once after reading them all.
type Values struct {
	v        *viper.Viper
	fs       *pflag.FlagSet
	file     string
	fileKeys map[string]bool
	settings map[string]Setting
	err      error
}

// Load parses args against settings (plus --config) and reads the config file, if
// one is named by --config or MINIRAY_<PROGRAM>_CONFIG (each program has its own,
// since each refuses the other's keys). An unknown flag, an unknown key in the
// file, or an unreadable file is an error wrapping [ErrUsage].
func Load(program string, args []string, settings []Setting, usageOut io.Writer) (*Values, error) {
	fs := pflag.NewFlagSet(program, pflag.ContinueOnError)
	fs.SetOutput(usageOut)
	configEnv := EnvPrefix + "_" + strings.ToUpper(program) + "_CONFIG"
	fs.String("config", "", "YAML config file (env "+configEnv+")")
	for _, s := range settings {
		switch d := s.Default.(type) {
		case string:
			fs.String(s.Flag(), d, s.Usage+" (env "+s.Env()+")")
		case int:
			fs.Int(s.Flag(), d, s.Usage+" (env "+s.Env()+")")
		case bool:
			fs.Bool(s.Flag(), d, s.Usage+" (env "+s.Env()+")")
		case time.Duration:
			fs.Duration(s.Flag(), d, s.Usage+" (env "+s.Env()+")")
		default:
			panic(fmt.Sprintf("config: setting %s has a default of unsupported type %T", s.Key, d))
		}
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %w", ErrUsage, err)
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("%w: unexpected argument %q", ErrUsage, fs.Arg(0))
	}

	v := viper.New()
	v.SetEnvPrefix(EnvPrefix)
	v.AutomaticEnv()
	vals := &Values{v: v, fs: fs, settings: make(map[string]Setting, len(settings))}
	for _, s := range settings {
		vals.settings[s.Key] = s
		v.SetDefault(s.Key, s.Default)
		if err := v.BindPFlag(s.Key, fs.Lookup(s.Flag())); err != nil {
			return nil, fmt.Errorf("bind flag %s: %w", s.Flag(), err)
		}
	}

	file, _ := fs.GetString("config")
	if file == "" {
		file = os.Getenv(configEnv)
	}
	if file != "" {
		if err := vals.readFile(file); err != nil {
			return nil, err
		}
	}
	return vals, nil
}

func (vals *Values) readFile(file string) error {
	vals.file = file
	if err := oneDocument(file); err != nil {
		return fmt.Errorf("%w: config file %s: %w", ErrUsage, file, err)
	}
	vals.v.SetConfigFile(file)
	vals.v.SetConfigType("yaml")
	if err := vals.v.ReadInConfig(); err != nil {
		return fmt.Errorf("%w: config file %s: %w", ErrUsage, file, err)
	}

	// viper accepts any key; a misspelled one would silently leave its setting at the
	// default, so every key in the file must be a known setting.
	only := viper.New()
	only.SetConfigFile(file)
	only.SetConfigType("yaml")
	if err := only.ReadInConfig(); err != nil {
		return fmt.Errorf("%w: config file %s: %w", ErrUsage, file, err)
	}
	vals.fileKeys = make(map[string]bool)
	var unknown []string
	for _, k := range only.AllKeys() {
		vals.fileKeys[k] = true
		if _, ok := vals.settings[k]; !ok {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		known := make([]string, 0, len(vals.settings))
		for k := range vals.settings {
			known = append(known, k)
		}
		slices.Sort(known)
		return fmt.Errorf("%w: config file %s: unknown key %s (known keys: %s)",
			ErrUsage, file, strings.Join(unknown, ", "), strings.Join(known, ", "))
	}
	return nil
}

// source says where a setting's value came from, for error messages.
func (vals *Values) source(key string) string {
	s := vals.settings[key]
	switch {
	case vals.fs.Changed(s.Flag()):
		return "flag --" + s.Flag()
	case os.Getenv(s.Env()) != "":
		return "env " + s.Env()
	case vals.fileKeys[key]:
		return "key " + key + " in " + vals.file
	default:
		return "default of " + key
	}
}

func (vals *Values) fail(key string, err error) {
	if vals.err == nil {
		vals.err = fmt.Errorf("%w: %s: %w", ErrUsage, vals.source(key), err)
	}
}

// Err returns the first bad value met by a getter or a check.
func (vals *Values) Err() error { return vals.err }

// Fail records a bad value of key found by the caller's own checks.
func (vals *Values) Fail(key string, format string, args ...any) {
	vals.fail(key, fmt.Errorf(format, args...))
}

// String returns a string setting.
func (vals *Values) String(key string) string {
	s, err := cast.ToStringE(vals.v.Get(key))
	if err != nil {
		vals.fail(key, err)
	}
	return s
}

// Int returns an integer setting. A fraction is refused, not rounded.
func (vals *Values) Int(key string) int {
	raw := vals.v.Get(key)
	var n int
	var err error
	switch v := raw.(type) {
	case int:
		n = v
	case float64:
		n = int(v)
		if float64(n) != v {
			err = errors.New("fraction")
		}
	case string:
		n, err = strconv.Atoi(strings.TrimSpace(v))
	default:
		n, err = cast.ToIntE(v)
	}
	if err != nil {
		vals.fail(key, fmt.Errorf("not an integer: %v", raw))
	}
	return n
}

// Address returns a host:port setting; the port must be a number from 0 to 65535.
func (vals *Values) Address(key string) string {
	s := vals.String(key)
	_, port, err := net.SplitHostPort(s)
	if err != nil {
		vals.fail(key, err)
		return s
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		vals.fail(key, fmt.Errorf("port %q is not a number from 0 to 65535", port))
	}
	return s
}

// NATSURL returns a setting that holds one NATS URL or several separated by commas.
// Each must have a nats, tls, ws or wss scheme and a host.
func (vals *Values) NATSURL(key string) string {
	s := strings.TrimSpace(vals.String(key))
	if s == "" {
		return ""
	}
	for _, one := range strings.Split(s, ",") {
		u, err := url.Parse(strings.TrimSpace(one))
		if err != nil {
			vals.fail(key, fmt.Errorf("%q: want a URL such as nats://127.0.0.1:4222", one))
			return s
		}
		switch u.Scheme {
		case "nats", "tls", "ws", "wss":
		default:
			vals.fail(key, fmt.Errorf("%q: want a URL such as nats://127.0.0.1:4222", one))
			return s
		}
		if u.Host == "" {
			vals.fail(key, fmt.Errorf("%q has no host", one))
			return s
		}
	}
	return s
}

// Bool returns a boolean setting.
func (vals *Values) Bool(key string) bool {
	b, err := cast.ToBoolE(vals.v.Get(key))
	if err != nil {
		vals.fail(key, fmt.Errorf("not true or false: %v", vals.v.Get(key)))
	}
	return b
}

// Duration returns a duration setting, written like "90s" or "2m".
func (vals *Values) Duration(key string) time.Duration {
	raw := vals.v.Get(key)
	if d, ok := raw.(time.Duration); ok {
		return d
	}
	s, err := cast.ToStringE(raw)
	if err == nil {
		var d time.Duration
		if d, err = time.ParseDuration(strings.TrimSpace(s)); err == nil {
			return d
		}
	}
	vals.fail(key, fmt.Errorf("not a duration such as 90s or 2m: %v", raw))
	return 0
}

// oneDocument checks that a YAML file holds a single document: viper reads only the
// first one, so the settings in any other would be silently ignored.
func oneDocument(file string) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	dec := yaml.NewDecoder(f)
	docs := 0
	for {
		var v any
		err := dec.Decode(&v)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		docs++
		if _, ok := v.(map[string]any); !ok && v != nil {
			return fmt.Errorf("holds a YAML %s; want a mapping of settings such as"+
				" \"nats_url: nats://127.0.0.1:4222\"", yamlKind(v))
		}
	}
	if docs > 1 {
		return fmt.Errorf("holds %d YAML documents; want one", docs)
	}
	return nil
}

// yamlKind names the kind of a decoded YAML value.
func yamlKind(v any) string {
	switch v.(type) {
	case []any:
		return "list"
	case string:
		return "string"
	}
	return "scalar"
}

// Loopback reports whether a listen address accepts connections from this machine
// only.
func Loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
