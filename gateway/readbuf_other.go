//go:build !unix

package gateway

// plainDialer is the default dialer for ws:// URLs; without a pooled
// reader on this platform it is the default one.
var plainDialer = defaultDialer
