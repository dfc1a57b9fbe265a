package client

import (
	"io"
	"strings"
)

// Parts of the random workstation names vlmcs makes (kms-client.md §3).
var (
	hostLabels = []string{"www", "ftp", "kms", "hack-me", "smtp", "ns1", "mx1", "ns1", "pop3", "imap",
		"mail", "dns", "headquarter", "we-love", "_vlmcs._tcp", "ceo-laptop"}
	domainLabels = []string{".microsoft", ".apple", ".amazon", ".samsung", ".adobe", ".google", ".yahoo",
		".facebook", ".ubuntu", ".oracle", ".borland", ".htc", ".acer", ".windows", ".linux", ".sony"}
	suffixes = []string{".com", ".net", ".org", ".cn", ".co.uk", ".de", ".com.tw", ".us", ".fr", ".it",
		".me", ".info", ".biz", ".co.jp", ".ua", ".at", ".es", ".pro", ".by", ".ru", ".pl", ".kr"}
)

func randIndex(r io.Reader, n int) int {
	var b [2]byte
	io.ReadFull(r, b[:])
	return (int(b[0])<<8 | int(b[1])) % n
}

// RandomDNSName returns a DNS-like workstation name.
func RandomDNSName(r io.Reader) string {
	return hostLabels[randIndex(r, len(hostLabels))] + domainLabels[randIndex(r, len(domainLabels))] +
		suffixes[randIndex(r, len(suffixes))]
}

// RandomNetBIOSName returns 1–14 random characters of 0-9A-Z (vlmcs -d).
func RandomNetBIOSName(r io.Reader) string {
	const chars = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	var sb strings.Builder
	n := 1 + randIndex(r, 14)
	for range n {
		sb.WriteByte(chars[randIndex(r, len(chars))])
	}
	return sb.String()
}
