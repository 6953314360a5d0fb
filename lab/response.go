package lab

import "strconv"

// Response returns the bytes both devices send to a HEAD or GET: a 200
// status, four headers and a body of size octets. Like a naive NodeMCU
// script, the devices send the body to HEAD too. device/device.c builds the
// same bytes.
func Response(size int) []byte {
	head := "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: " + strconv.Itoa(size) +
		"\r\nConnection: close\r\n\r\n"
	out := make([]byte, 0, len(head)+size)
	out = append(out, head...)
	const fill = "closeduel"
	for i := range size {
		if i == size-1 {
			out = append(out, '\n')
		} else {
			out = append(out, fill[i%len(fill)])
		}
	}
	return out
}
