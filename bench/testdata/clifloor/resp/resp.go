// Package resp is the hand-written Redis client of the CLI floors: just what
// HELLO and HMGET need, no more (no pool, no retries, no TLS, no topologies).
package resp

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
)

// LastField connects to addr, authenticates with HELLO 3 AUTH, sends
// HMGET key fields... and returns the last field's value, a JSON string
// unquoted as the CLI prints it.
func LastField(addr, user, password, key string, fields ...string) (string, error) {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	r := bufio.NewReader(conn)
	if _, err := do(conn, r, "HELLO", "3", "AUTH", user, password); err != nil {
		return "", err
	}
	v, err := do(conn, r, append([]string{"HMGET", key}, fields...)...)
	if err != nil {
		return "", err
	}
	vals, _ := v.([]any)
	if len(vals) == 0 {
		return "", fmt.Errorf("HMGET: unexpected reply %v", v)
	}
	s, _ := vals[len(vals)-1].(string)
	return strings.Trim(s, `"`), nil
}

func do(c net.Conn, r *bufio.Reader, args ...string) (any, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, s := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(s), s)
	}
	if _, err := c.Write([]byte(b.String())); err != nil {
		return nil, err
	}
	return read(r)
}

// read reads one RESP2/RESP3 reply, enough of the protocol for HELLO and HMGET.
func read(r *bufio.Reader) (any, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return nil, err
	}
	line = strings.TrimSuffix(line, "\r\n")
	if line == "" {
		return nil, fmt.Errorf("empty reply line")
	}
	switch line[0] {
	case '+', ':':
		return line[1:], nil
	case '_':
		return nil, nil
	case '-':
		return nil, fmt.Errorf("%s", line[1:])
	case '$':
		n, _ := strconv.Atoi(line[1:])
		if n < 0 {
			return nil, nil
		}
		b := make([]byte, n+2)
		if _, err := io.ReadFull(r, b); err != nil {
			return nil, err
		}
		return string(b[:n]), nil
	case '*', '%':
		n, _ := strconv.Atoi(line[1:])
		if line[0] == '%' {
			n *= 2
		}
		out := make([]any, 0, max(n, 0))
		for range n {
			v, err := read(r)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		return out, nil
	}
	return nil, fmt.Errorf("unexpected reply %q", line)
}

// Print prints the value a floor got, or its error on stderr with exit code 1
// (every floor ends with it; it links nothing beyond the standard library).
func Print(v any, err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println(v)
}
