package discordsim

import (
	"errors"
	"net"
	"strconv"
	"strings"
)

// parseAdvertise splits Config.Advertise, "HOST" or "HOST:PORT" (an IPv6
// address bare or in brackets), into host and port; port is "" when not
// given. An empty adv is ("", "").
func parseAdvertise(adv string) (host, port string, err error) {
	if adv == "" {
		return "", "", nil
	}
	if strings.Contains(adv, "/") {
		return "", "", errors.New("must be HOST or HOST:PORT, not a URL")
	}
	host, port, err = net.SplitHostPort(adv)
	if err != nil { // no port: a name, an IPv4 address, or an IPv6 one bare or bracketed
		host, port = adv, ""
		if strings.HasPrefix(adv, "[") && strings.HasSuffix(adv, "]") {
			host = adv[1 : len(adv)-1]
		}
	} else if n, perr := strconv.Atoi(port); perr != nil || n < 1 || n > 65535 {
		return "", "", errors.New("port must be 1-65535")
	}
	if ip := net.ParseIP(host); ip != nil {
		if ip.IsUnspecified() {
			return "", "", errors.New("is a wildcard address, which no client can connect to")
		}
		return host, port, nil
	}
	if !validHostname(host) {
		return "", "", errors.New("host must be an IP address or a hostname (letters, digits, '-', '_' and '.')")
	}
	return host, port, nil
}

// validHostname accepts what may stand as the host of a ws:// URL without
// escaping: a DNS name (underscores allowed, as container names have them).
func validHostname(h string) bool {
	if h == "" || len(h) > 253 || h[0] == '-' || h[0] == '.' {
		return false
	}
	for _, r := range h {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
		default:
			return false
		}
	}
	return true
}

// isWildcard reports whether a listen host means every interface.
func isWildcard(host string) bool {
	if host == "" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsUnspecified()
}

// wildcardHost is the host a wildcard listener is advertised under (see
// Config.Advertise): the first global unicast address of an up,
// non-loopback interface, IPv4 first; only IPv4 if ipv4Only (0.0.0.0 does
// not accept IPv6); 127.0.0.1 if there is none.
func wildcardHost(ipv4Only bool) string {
	ifaces, err := net.Interfaces()
	if err != nil {
		return "127.0.0.1"
	}
	var v6 string
	for _, ifc := range ifaces {
		if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, err := ifc.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			ipn, ok := a.(*net.IPNet)
			if !ok || !ipn.IP.IsGlobalUnicast() { // not loopback, link-local, multicast or unspecified
				continue
			}
			if ip4 := ipn.IP.To4(); ip4 != nil {
				return ip4.String()
			}
			if v6 == "" && !ipv4Only {
				v6 = ipn.IP.String()
			}
		}
	}
	if v6 != "" {
		return v6
	}
	return "127.0.0.1"
}
