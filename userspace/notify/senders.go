package notify

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	stdmime "mime"
	"net"
	"net/http"
	"net/mail"
	"net/smtp"
	"os"
	"strings"
	"time"
)

// Webhook POSTs each Delivery as JSON to URL and expects a 2xx answer.
type Webhook struct {
	URL string
	// Header is added to every request (e.g. Authorization).
	Header http.Header
	// Client defaults to http.DefaultClient (the attempt's context bounds
	// it).
	Client *http.Client
}

// Send implements Sender.
func (w *Webhook) Send(ctx context.Context, d Delivery) error {
	body, err := json.Marshal(struct {
		Subject string `json:"subject"`
		Delivery
	}{d.Subject(), d})
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	for k, vs := range w.Header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "xwan-notify")
	c := w.Client
	if c == nil {
		c = http.DefaultClient
	}
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("webhook %s: %w", w.URL, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("webhook %s: %s", w.URL, resp.Status)
	}
	return nil
}

// Email sends each Delivery as one plain-text message over SMTP.
type Email struct {
	// Server is host:port of the SMTP relay.
	Server string
	From   string
	To     []string
	// Auth is used when set (smtp.PlainAuth refuses to send the password
	// without TLS unless the server is on localhost).
	Auth smtp.Auth
	// TLS configures STARTTLS, used whenever the server offers it; nil
	// means the defaults with the server's host name.
	TLS *tls.Config
	// RequireTLS fails instead of sending in clear when the server does
	// not offer STARTTLS.
	RequireTLS bool
	// SubjectPrefix goes in front of every subject; default "[xwan] ".
	SubjectPrefix string
}

// Send implements Sender.
func (e *Email) Send(ctx context.Context, d Delivery) error {
	if len(e.To) == 0 {
		return errors.New("email: no recipients")
	}
	if _, err := mail.ParseAddress(e.From); err != nil {
		return fmt.Errorf("email: from %q: %w", e.From, err)
	}
	host, _, err := net.SplitHostPort(e.Server)
	if err != nil {
		return fmt.Errorf("email: server %q: %w", e.Server, err)
	}
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", e.Server)
	if err != nil {
		return fmt.Errorf("email: %w", err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	c, err := smtp.NewClient(conn, host)
	if err != nil {
		return fmt.Errorf("email: %w", err)
	}
	defer c.Close()
	hostname, _ := os.Hostname()
	if hostname == "" {
		hostname = "xwan"
	}
	if err := c.Hello(hostname); err != nil {
		return fmt.Errorf("email: HELO: %w", err)
	}
	if ok, _ := c.Extension("STARTTLS"); ok {
		cfg := e.TLS
		if cfg == nil {
			cfg = &tls.Config{ServerName: host}
		}
		if err := c.StartTLS(cfg); err != nil {
			return fmt.Errorf("email: STARTTLS: %w", err)
		}
	} else if e.RequireTLS {
		return fmt.Errorf("email: %s does not offer STARTTLS", e.Server)
	}
	if e.Auth != nil {
		if err := c.Auth(e.Auth); err != nil {
			return fmt.Errorf("email: AUTH: %w", err)
		}
	}
	if err := c.Mail(e.From); err != nil {
		return fmt.Errorf("email: MAIL FROM: %w", err)
	}
	for _, to := range e.To {
		if err := c.Rcpt(to); err != nil {
			return fmt.Errorf("email: RCPT TO %s: %w", to, err)
		}
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("email: DATA: %w", err)
	}
	if _, err := w.Write(e.compose(d, hostname)); err != nil {
		return fmt.Errorf("email: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("email: end of DATA: %w", err)
	}
	return c.Quit()
}

// compose builds the RFC 5322 message; the SMTP client dot-stuffs it.
func (e *Email) compose(d Delivery, hostname string) []byte {
	prefix := e.SubjectPrefix
	if prefix == "" {
		prefix = "[xwan] "
	}
	var id [12]byte
	_, _ = rand.Read(id[:])
	var b bytes.Buffer
	hdr := func(k, v string) { fmt.Fprintf(&b, "%s: %s\r\n", k, oneLine(v)) }
	hdr("From", e.From)
	hdr("To", strings.Join(e.To, ", "))
	hdr("Subject", mime(prefix+d.Subject()))
	hdr("Date", time.Now().Format(time.RFC1123Z))
	hdr("Message-ID", "<"+hex.EncodeToString(id[:])+"@"+hostname+">")
	hdr("MIME-Version", "1.0")
	hdr("Content-Type", "text/plain; charset=utf-8")
	hdr("Content-Transfer-Encoding", "8bit")
	hdr("X-Xwan-Key", d.Key)
	b.WriteString("\r\n")
	body := d.Text()
	if d.Digest {
		body = fmt.Sprintf("Gathered over the %s period for %s:\n\n%s", d.Frequency, d.Key, body)
	}
	b.WriteString(strings.ReplaceAll(body, "\n", "\r\n"))
	return b.Bytes()
}

// mime encodes a header value that is not plain ASCII (RFC 2047).
func mime(s string) string {
	for _, r := range s {
		if r > 126 {
			return stdmime.QEncoding.Encode("utf-8", s)
		}
	}
	return s
}
