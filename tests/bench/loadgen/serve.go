package main

// The "serve" mode: a keep-alive HTTP/1.1 server that replays answers captured
// from the Python fake upstream (switchman_fake) at the start of the run, so
// every column gets the fake's bytes while the load core spends ~10x less CPU
// per request on the upstream than the Python fake does (its own CPU, not the
// proxy's, was what limited the direct column's requests per second).

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"regexp"
	"strconv"
	"time"
)

// errBadRequest ends a connection whose request the serve mode does not take.
var errBadRequest = errors.New("request not served")

// answers: the fake's answer bodies; streams as their SSE frames, one chunk each.
type answers struct {
	Chat        []byte   `json:"chat"`
	Stream      [][]byte `json:"stream"`
	StreamUsage [][]byte `json:"stream_usage"`
}

var (
	streamTrue  = regexp.MustCompile(`"stream"\s*:\s*true`)
	includUsage = regexp.MustCompile(`"include_usage"\s*:\s*true`)
)

const maxBody = 8 << 20

func serve(port int, answersFile string, lifetime time.Duration) error {
	raw, err := os.ReadFile(answersFile)
	if err != nil {
		return err
	}
	var a answers
	if err = json.Unmarshal(raw, &a); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return err
	}
	time.AfterFunc(lifetime, func() { os.Exit(0) })
	chat := fmt.Appendf(nil, "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n", len(a.Chat))
	chat = append(chat, a.Chat...)
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		go serveConn(c, chat, &a)
	}
}

func serveConn(c net.Conn, chat []byte, a *answers) {
	defer c.Close()
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
	}
	r := bufio.NewReaderSize(c, 64<<10)
	body := make([]byte, 0, 4096)
	for {
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Minute))
		line, err := r.ReadSlice('\n')
		if err != nil {
			return
		}
		// Decided now: line points into the reader's buffer, which later reads reuse.
		method, rest, _ := bytes.Cut(line, []byte(" "))
		path, _, _ := bytes.Cut(rest, []byte(" "))
		chatPost := string(method) == "POST" && bytes.HasSuffix(path, []byte("/chat/completions"))
		length, closing := 0, false
		err = headers(r, func(name, value []byte) (err error) {
			switch {
			case bytes.EqualFold(name, []byte("content-length")):
				if length, err = strconv.Atoi(string(value)); err == nil && (length < 0 || length > maxBody) {
					err = errBadRequest
				}
			case bytes.EqualFold(name, []byte("transfer-encoding")):
				err = errBadRequest // no client of the bench sends chunked bodies
			case bytes.EqualFold(name, []byte("connection")):
				closing = bytes.EqualFold(value, []byte("close"))
			}
			return err
		})
		if err != nil {
			return
		}
		body = body[:0]
		if cap(body) < length {
			body = make([]byte, 0, length)
		}
		body = body[:length]
		if _, err = readFull(r, body); err != nil {
			return
		}
		_ = c.SetWriteDeadline(time.Now().Add(time.Minute))
		switch {
		case !chatPost:
			msg := []byte(`{"error":{"message":"the bench upstream only answers chat completions","type":"not_found"}}`)
			_, err = fmt.Fprintf(c, "HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s", len(msg), msg)
		case streamTrue.Match(body):
			frames := a.Stream
			if includUsage.Match(body) {
				frames = a.StreamUsage
			}
			_, err = c.Write([]byte("HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n"))
			for _, f := range frames {
				if err == nil {
					_, err = c.Write(fmt.Appendf(nil, "%x\r\n%s\r\n", len(f), f))
				}
			}
			if err == nil {
				_, err = c.Write([]byte("0\r\n\r\n"))
			}
		default:
			_, err = c.Write(chat)
		}
		if err != nil || closing {
			return
		}
	}
}

func readFull(r *bufio.Reader, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, err := r.Read(b[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}
