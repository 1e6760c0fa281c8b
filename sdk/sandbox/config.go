package sandbox

import (
	"fmt"
	"net/http"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/airlock-sandbox/airlock/sdk/wire"
)

// Default values shared with the official SDKs.
const (
	DefaultDomain         = "e2b.app"
	DefaultTemplate       = "base"
	DefaultSandboxTimeout = 300 * time.Second
	DefaultRequestTimeout = 60 * time.Second
	DefaultCommandTimeout = 60 * time.Second
	DefaultWatchTimeout   = 60 * time.Second

	// EnvdPort is the port of envd inside every sandbox.
	EnvdPort = wire.EnvdPort

	// NoTimeout disables a command, watch or request timeout.
	NoTimeout time.Duration = -1

	sdkVersion     = "0.1.0"
	debugAPIURL    = "http://localhost:3000"
	debugEnvdURL   = "http://localhost:49983"
	debugSandboxID = "debug_sandbox_id"
	debugEnvd      = "99.99.99"
	keepaliveSecs  = "50"
)

// sharedHostDomains are E2B's own domains, reached through one shared
// sandbox host with header routing.
var sharedHostDomains = map[string]bool{
	"e2b.app": true, "e2b.dev": true, "e2b.pro": true, "e2b-staging.dev": true,
}

var apiKeyRe = regexp.MustCompile(`^e2b_[0-9a-f]+$`)

// Config is the connection configuration. Build it with NewConfig, which
// reads the environment first and then applies Options.
type Config struct {
	APIKey     string
	APIURL     string // control API base; "" derives it from Domain
	SandboxURL string // envd base for every sandbox; "" derives it per sandbox
	Domain     string
	Debug      bool
	// ValidateAPIKey checks the key format (e2b_ + hex) before any request;
	// E2B_VALIDATE_API_KEY=false turns it off.
	ValidateAPIKey bool
	// RequestTimeout bounds each unary call (not streams); NoTimeout disables it.
	RequestTimeout time.Duration
	// HTTPClient carries every request; nil means http.DefaultClient.
	HTTPClient *http.Client
	// Headers are added to every control API request.
	Headers http.Header
}

// Option changes a Config.
type Option func(*Config)

// WithAPIKey sets the API key (overrides E2B_API_KEY).
func WithAPIKey(key string) Option { return func(c *Config) { c.APIKey = key } }

// WithAPIURL sets the control API base URL (overrides E2B_API_URL).
func WithAPIURL(u string) Option { return func(c *Config) { c.APIURL = u } }

// WithSandboxURL sets the envd base URL used for every sandbox
// (overrides E2B_SANDBOX_URL).
func WithSandboxURL(u string) Option { return func(c *Config) { c.SandboxURL = u } }

// WithDomain sets the domain (overrides E2B_DOMAIN).
func WithDomain(d string) Option { return func(c *Config) { c.Domain = d } }

// WithDebug switches every base URL to localhost (overrides E2B_DEBUG).
func WithDebug(on bool) Option { return func(c *Config) { c.Debug = on } }

// WithHTTPClient sets the HTTP client for all requests, e.g. one with a
// custom dialer or CA pool.
func WithHTTPClient(hc *http.Client) Option { return func(c *Config) { c.HTTPClient = hc } }

// WithRequestTimeout sets the per-request timeout of unary calls.
func WithRequestTimeout(d time.Duration) Option { return func(c *Config) { c.RequestTimeout = d } }

// WithHeaders adds headers to every control API request.
func WithHeaders(h http.Header) Option {
	return func(c *Config) {
		if c.Headers == nil {
			c.Headers = http.Header{}
		}
		for k, vs := range h {
			for _, v := range vs {
				c.Headers.Add(k, v)
			}
		}
	}
}

// WithValidateAPIKey turns the client-side key format check on or off.
func WithValidateAPIKey(on bool) Option { return func(c *Config) { c.ValidateAPIKey = on } }

// NewConfig reads E2B_API_KEY, E2B_API_URL, E2B_SANDBOX_URL, E2B_DOMAIN,
// E2B_DEBUG and E2B_VALIDATE_API_KEY, then applies opts.
func NewConfig(opts ...Option) *Config {
	c := &Config{
		APIKey:         os.Getenv("E2B_API_KEY"),
		APIURL:         os.Getenv("E2B_API_URL"),
		SandboxURL:     os.Getenv("E2B_SANDBOX_URL"),
		Domain:         os.Getenv("E2B_DOMAIN"),
		Debug:          strings.EqualFold(os.Getenv("E2B_DEBUG"), "true"),
		ValidateAPIKey: !strings.EqualFold(os.Getenv("E2B_VALIDATE_API_KEY"), "false"),
		RequestTimeout: DefaultRequestTimeout,
	}
	for _, o := range opts {
		o(c)
	}
	if c.Domain == "" {
		c.Domain = DefaultDomain
	}
	return c
}

func (c *Config) httpClient() *http.Client {
	if c.HTTPClient != nil {
		return c.HTTPClient
	}
	return http.DefaultClient
}

// apiURL is the control API base: option/E2B_API_URL, then debug
// localhost, then https://api.{domain}.
func (c *Config) apiURL() string {
	switch {
	case c.APIURL != "":
		return strings.TrimRight(c.APIURL, "/")
	case c.Debug:
		return debugAPIURL
	default:
		return "https://api." + c.Domain
	}
}

// sandboxDomain is the domain a sandbox answered with, else the config's.
func (c *Config) sandboxDomain(d string) string {
	if d != "" {
		return d
	}
	return c.Domain
}

// envdURL resolves the envd base URL like the official SDKs'
// getSandboxUrl: explicit URL, debug localhost, E2B's shared host, then
// https://49983-{id}.{domain}.
func (c *Config) envdURL(id, domain string) string {
	d := c.sandboxDomain(domain)
	switch {
	case c.SandboxURL != "":
		return strings.TrimRight(c.SandboxURL, "/")
	case c.Debug:
		return debugEnvdURL
	case sharedHostDomains[d]:
		return "https://sandbox." + d
	default:
		return fmt.Sprintf("https://%d-%s.%s", EnvdPort, id, d)
	}
}

// directEnvdURL is the URL handed to third parties (signed file URLs): it
// never uses the shared host because it carries no routing headers.
func (c *Config) directEnvdURL(id, domain string) string {
	switch {
	case c.SandboxURL != "":
		return strings.TrimRight(c.SandboxURL, "/")
	case c.Debug:
		return debugEnvdURL
	default:
		return fmt.Sprintf("https://%d-%s.%s", EnvdPort, id, c.sandboxDomain(domain))
	}
}

// host is {port}-{id}.{domain}, or localhost:{port} in debug mode.
func (c *Config) host(id, domain string, port int) string {
	if c.Debug {
		return fmt.Sprintf("localhost:%d", port)
	}
	return fmt.Sprintf("%d-%s.%s", port, id, c.sandboxDomain(domain))
}

func (c *Config) checkAPIKey() error {
	if c.APIKey == "" {
		return newError(ErrAuthentication, 0, "", "API key is required: set E2B_API_KEY or use WithAPIKey", nil)
	}
	if c.ValidateAPIKey && !apiKeyRe.MatchString(c.APIKey) {
		return newError(ErrAuthentication, 0, "", "invalid API key format: expected e2b_ followed by hex characters", nil)
	}
	return nil
}

// requestTimeout is the timeout for one unary call, or 0 for none.
func (c *Config) requestTimeout() time.Duration {
	if c.RequestTimeout < 0 {
		return 0
	}
	if c.RequestTimeout == 0 {
		return DefaultRequestTimeout
	}
	return c.RequestTimeout
}
