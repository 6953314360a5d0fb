/*
 * closeduel-device: the lab's embedded device. It drives Debian's lwIP
 * (a Unix build: NO_SYS=0, core locking, tap driver) on a tap port of the
 * lab bridge and behaves like NodeMCU's `net` web server: it answers
 * HEAD/GET with a short 200 response and closes from the `sent` callback,
 * so the server closes first.
 *
 * Options (all optional):
 *   -addr A.B.C.D/N   address of the device (192.168.100.99/24)
 *   -port N           TCP port to serve (80)
 *   -close MODE       close: tcp_close once the response is acked (default)
 *                     wait:  wait for the client's FIN, then tcp_close
 *                     abort: tcp_abort (RST) once the response is acked
 *   -size N           response body octets (32); HEAD and GET get the same
 *                     bytes, as a naive NodeMCU script sends them
 *   -pool N           pcbs (active + TIME_WAIT) the device may hold, as
 *                     MEMP_NUM_TCP_PCB on the ESP8266 (5); 0 = no limit.
 *                     A SYN that needs a new pcb when the pool is full kills
 *                     one first, in lwIP's tcp_alloc order: the oldest
 *                     TIME_WAIT, then LAST_ACK, then CLOSING (no RST), then
 *                     the oldest other active pcb (RST).
 *   -timewait MS      TIME_WAIT length in ms; 0 keeps lwIP's 2*TCP_MSL
 *                     (120 s in Debian's build). Shorter lengths are made
 *                     by aborting older TIME_WAIT pcbs (no RST is sent).
 *   -busyclose 0|1    1: take in no acknowledgment of the device's own FIN
 *                     (a device too busy at close to process them): a
 *                     segment without RST whose ACK covers the FIN of a
 *                     pcb in FIN_WAIT_1, CLOSING or LAST_ACK is dropped
 *                     on arrival; lwIP retransmits its FIN with back-off.
 *   -mac XX:..:XX     MAC address (02:12:34:56:78:ab)
 *
 * The tap is the one named by PRECONFIGURED_TAPIF (tap0), created and
 * attached to the bridge beforehand.
 *
 * Output: one JSON object per line on stdout: "ready" once serving,
 * "syn" (a SYN reached the device; only with a pool), "accept", "fin",
 * "close", "err", "pool_kill", "tw_expire" per event, and
 * "status" (counters and every pcb with its state) on SIGUSR1 and at exit
 * (SIGTERM/SIGINT, then "final":true).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lwip/etharp.h"
#include "lwip/init.h"
#include "lwip/ip4_addr.h"
#include "lwip/netif.h"
#include "lwip/pbuf.h"
#include "lwip/prot/ethernet.h"
#include "lwip/prot/ip4.h"
#include "lwip/prot/tcp.h"
#include "lwip/priv/tcp_priv.h"
#include "lwip/tcp.h"
#include "lwip/tcpip.h"
#include "lwip/timeouts.h"
#include "netif/ethernet.h"
#include "netif/tapif.h"

enum close_mode { CLOSE_AFTER_SEND, CLOSE_WAIT_CLIENT, CLOSE_ABORT };

static const char *mode_names[] = {"close", "wait", "abort"};

struct options {
	ip4_addr_t addr, mask;
	u16_t port;
	enum close_mode mode;
	int size;
	int pool;
	long timewait_ms;
	int busy_close;
	u8_t mac[6];
};

struct counters {
	unsigned long accepted, requests, responses, closed, aborted;
	unsigned long reset_by_peer, errors, dropped_syns;
	unsigned long kill_time_wait, kill_last_ack, kill_closing, kill_active;
	unsigned long tw_expired;
	unsigned long busy_dropped;
};

struct conn {
	struct tcp_pcb *pcb;
	unsigned long id;
	int request_seen;
	u32_t to_ack;  /* response octets not yet acked */
	int responded; /* response fully acked */
	char remote[32];
};

struct tw_entry {
	struct tcp_pcb *pcb;
	double since;
};

/* All state below is touched only with the lwIP core lock held. */
static struct options opt;
static struct counters cnt;
static struct netif tap;
static struct tcp_pcb *listener;
static unsigned long next_id = 1;
static char *response;
static int response_len;
static struct tw_entry *tw_seen;
static size_t tw_len, tw_cap;
static err_t (*tap_input)(struct pbuf *, struct netif *);

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void format_remote(struct tcp_pcb *pcb, char *buf, size_t n)
{
	snprintf(buf, n, "%s:%u", ip4addr_ntoa(ip_2_ip4(&pcb->remote_ip)), pcb->remote_port);
}

static void emit_event(const char *event, struct tcp_pcb *pcb, const char *extra)
{
	char remote[32] = "";
	if (pcb != NULL)
		format_remote(pcb, remote, sizeof remote);
	printf("{\"event\":\"%s\",\"time\":%.6f,\"remote\":\"%s\"%s%s}\n", event, now(), remote,
	       extra && *extra ? "," : "", extra ? extra : "");
	fflush(stdout);
}

static int pcb_count(void)
{
	int n = 0;
	for (struct tcp_pcb *p = tcp_active_pcbs; p != NULL; p = p->next)
		n++;
	for (struct tcp_pcb *p = tcp_tw_pcbs; p != NULL; p = p->next)
		n++;
	return n;
}

static void print_status(int final)
{
	int active = 0, tw = 0;
	printf("{\"event\":\"status\",\"time\":%.6f,\"final\":%s,\"close\":\"%s\",\"pool\":%d,\"timewait_ms\":%ld,",
	       now(), final ? "true" : "false", mode_names[opt.mode], opt.pool, opt.timewait_ms);
	printf("\"accepted\":%lu,\"requests\":%lu,\"responses\":%lu,\"closed\":%lu,\"aborted\":%lu,"
	       "\"reset_by_peer\":%lu,\"errors\":%lu,\"dropped_syns\":%lu,",
	       cnt.accepted, cnt.requests, cnt.responses, cnt.closed, cnt.aborted, cnt.reset_by_peer,
	       cnt.errors, cnt.dropped_syns);
	printf("\"pool_killed\":{\"time_wait\":%lu,\"last_ack\":%lu,\"closing\":%lu,\"active\":%lu},"
	       "\"tw_expired\":%lu,\"busy_dropped\":%lu,\"pcbs\":[",
	       cnt.kill_time_wait, cnt.kill_last_ack, cnt.kill_closing, cnt.kill_active, cnt.tw_expired,
	       cnt.busy_dropped);
	int first = 1;
	struct tcp_pcb *lists[2] = {tcp_active_pcbs, tcp_tw_pcbs};
	for (int l = 0; l < 2; l++) {
		for (struct tcp_pcb *p = lists[l]; p != NULL; p = p->next) {
			char remote[32];
			format_remote(p, remote, sizeof remote);
			printf("%s{\"remote\":\"%s\",\"state\":\"%s\"}", first ? "" : ",", remote,
			       tcp_debug_state_str(p->state));
			first = 0;
			if (p->state == TIME_WAIT)
				tw++;
			else
				active++;
		}
	}
	printf("],\"active\":%d,\"time_wait\":%d}\n", active, tw);
	fflush(stdout);
}

/* forget detaches the connection from its pcb and frees it. */
static void forget(struct conn *c)
{
	if (c->pcb != NULL) {
		tcp_arg(c->pcb, NULL);
		tcp_recv(c->pcb, NULL);
		tcp_sent(c->pcb, NULL);
		tcp_err(c->pcb, NULL);
		tcp_poll(c->pcb, NULL, 0);
	}
	free(c);
}

/* finish closes or aborts the connection; it returns ERR_ABRT when the pcb
 * was aborted (callers in a callback must then return ERR_ABRT). */
static err_t finish(struct conn *c, int abort)
{
	struct tcp_pcb *pcb = c->pcb;
	if (abort) {
		emit_event("close", pcb, "\"how\":\"abort\"");
		cnt.aborted++;
		forget(c);
		tcp_abort(pcb);
		return ERR_ABRT;
	}
	err_t err = tcp_close(pcb);
	if (err != ERR_OK) {
		/* out of memory: try again from the poll callback */
		return ERR_OK;
	}
	emit_event("close", pcb, "\"how\":\"close\"");
	cnt.closed++;
	forget(c);
	return ERR_OK;
}

static err_t on_poll(void *arg, struct tcp_pcb *pcb)
{
	struct conn *c = arg;
	(void)pcb;
	if (c == NULL)
		return ERR_OK;
	if (c->responded && opt.mode == CLOSE_AFTER_SEND)
		return finish(c, 0);
	return ERR_OK;
}

static err_t on_sent(void *arg, struct tcp_pcb *pcb, u16_t len)
{
	struct conn *c = arg;
	(void)pcb;
	if (c == NULL)
		return ERR_OK;
	c->to_ack = len >= c->to_ack ? 0 : c->to_ack - len;
	if (c->to_ack > 0 || c->responded)
		return ERR_OK;
	c->responded = 1;
	cnt.responses++;
	switch (opt.mode) {
	case CLOSE_AFTER_SEND:
		return finish(c, 0);
	case CLOSE_ABORT:
		return finish(c, 1);
	case CLOSE_WAIT_CLIENT:
		break;
	}
	return ERR_OK;
}

static err_t on_recv(void *arg, struct tcp_pcb *pcb, struct pbuf *p, err_t err)
{
	struct conn *c = arg;
	(void)err;
	if (p == NULL) {
		/* the client closed its side */
		emit_event("fin", pcb, "");
		return finish(c, 0);
	}
	tcp_recved(pcb, p->tot_len);
	if (c != NULL && !c->request_seen) {
		char head[5] = {0};
		pbuf_copy_partial(p, head, 4, 0);
		if (strncmp(head, "HEAD", 4) == 0 || strncmp(head, "GET ", 4) == 0) {
			c->request_seen = 1;
			cnt.requests++;
			err_t werr = tcp_write(pcb, response, (u16_t)response_len, TCP_WRITE_FLAG_COPY);
			if (werr == ERR_OK) {
				c->to_ack = (u32_t)response_len;
				tcp_output(pcb);
			} else {
				cnt.errors++;
			}
		}
	}
	pbuf_free(p);
	return ERR_OK;
}

static void on_err(void *arg, err_t err)
{
	struct conn *c = arg;
	if (c == NULL)
		return;
	char extra[48];
	snprintf(extra, sizeof extra, "\"err\":\"%s\"", lwip_strerr(err));
	printf("{\"event\":\"err\",\"time\":%.6f,\"remote\":\"%s\",%s}\n", now(), c->remote, extra);
	fflush(stdout);
	if (err == ERR_RST)
		cnt.reset_by_peer++;
	else
		cnt.errors++;
	c->pcb = NULL; /* lwIP has freed it */
	free(c);
}

static err_t on_accept(void *arg, struct tcp_pcb *pcb, err_t err)
{
	(void)arg;
	if (err != ERR_OK || pcb == NULL)
		return ERR_VAL;
	struct conn *c = calloc(1, sizeof *c);
	if (c == NULL) {
		tcp_abort(pcb);
		return ERR_ABRT;
	}
	c->pcb = pcb;
	c->id = next_id++;
	format_remote(pcb, c->remote, sizeof c->remote);
	cnt.accepted++;
	tcp_arg(pcb, c);
	tcp_recv(pcb, on_recv);
	tcp_sent(pcb, on_sent);
	tcp_err(pcb, on_err);
	tcp_poll(pcb, on_poll, 2);
	tcp_nagle_disable(pcb);
	emit_event("accept", pcb, "");
	return ERR_OK;
}

/* oldest returns the pcb of the list in the given state (or any state but
 * skip's when state < 0) that has been idle longest. */
static struct tcp_pcb *oldest(struct tcp_pcb *list, int state)
{
	struct tcp_pcb *found = NULL;
	u32_t idle = 0;
	for (struct tcp_pcb *p = list; p != NULL; p = p->next) {
		if (state >= 0 && p->state != (enum tcp_state)state)
			continue;
		if (state < 0 && (p->state == LAST_ACK || p->state == CLOSING))
			continue;
		if (found == NULL || (u32_t)(tcp_ticks - p->tmr) >= idle) {
			idle = tcp_ticks - p->tmr;
			found = p;
		}
	}
	return found;
}

/* kill_one frees one pcb as lwIP's tcp_alloc does when its pool is empty.
 * It reports whether one was freed. */
static int kill_one(void)
{
	struct tcp_pcb *p = oldest(tcp_tw_pcbs, TIME_WAIT);
	if (p != NULL) {
		emit_event("pool_kill", p, "\"state\":\"TIME_WAIT\"");
		cnt.kill_time_wait++;
		tcp_abort(p); /* TIME_WAIT: freed without a RST */
		return 1;
	}
	static const int soft[] = {LAST_ACK, CLOSING};
	for (int i = 0; i < 2; i++) {
		p = oldest(tcp_active_pcbs, soft[i]);
		if (p != NULL) {
			char extra[32];
			snprintf(extra, sizeof extra, "\"state\":\"%s\"", tcp_debug_state_str(p->state));
			emit_event("pool_kill", p, extra);
			if (soft[i] == LAST_ACK)
				cnt.kill_last_ack++;
			else
				cnt.kill_closing++;
			tcp_abandon(p, 0); /* as tcp_kill_state: no RST */
			return 1;
		}
	}
	p = oldest(tcp_active_pcbs, -1);
	if (p != NULL) {
		char extra[32];
		snprintf(extra, sizeof extra, "\"state\":\"%s\"", tcp_debug_state_str(p->state));
		emit_event("pool_kill", p, extra);
		cnt.kill_active++;
		tcp_abort(p); /* as tcp_kill_prio: RST */
		return 1;
	}
	return 0;
}

/* tcp_headers copies the start of an Ethernet frame into buf and finds its
 * IPv4 and TCP headers; it returns 0 when the frame is no IPv4 TCP segment
 * with a whole TCP header in the bytes copied. */
static int tcp_headers(struct pbuf *p, u8_t buf[SIZEOF_ETH_HDR + 60 + 20], u8_t **ip, u8_t **th)
{
	u16_t n = pbuf_copy_partial(p, buf, SIZEOF_ETH_HDR + 60 + 20, 0);
	if (n < SIZEOF_ETH_HDR + 20)
		return 0;
	struct eth_hdr *eth = (struct eth_hdr *)buf;
	if (eth->type != PP_HTONS(ETHTYPE_IP))
		return 0;
	*ip = buf + SIZEOF_ETH_HDR;
	if (((*ip)[0] >> 4) != 4 || (*ip)[9] != IP_PROTO_TCP)
		return 0;
	int ihl = ((*ip)[0] & 0x0f) * 4;
	if (n < SIZEOF_ETH_HDR + ihl + 20)
		return 0;
	*th = *ip + ihl;
	return 1;
}

/* needs_new_pcb reports whether an IPv4 TCP SYN (without ACK) to our port
 * would make lwIP allocate a pcb: no active or TIME_WAIT pcb holds its
 * 4-tuple. */
static int needs_new_pcb(struct pbuf *p)
{
	u8_t buf[SIZEOF_ETH_HDR + 60 + 20];
	u8_t *ip, *th;
	if (!tcp_headers(p, buf, &ip, &th))
		return 0;
	u8_t flags = th[13];
	if ((flags & (TCP_SYN | TCP_ACK | TCP_RST)) != TCP_SYN)
		return 0;
	u16_t sport = (u16_t)(th[0] << 8 | th[1]), dport = (u16_t)(th[2] << 8 | th[3]);
	if (dport != opt.port)
		return 0;
	u32_t src;
	memcpy(&src, ip + 12, 4);
	ip4_addr_t a;
	a.addr = src;
	printf("{\"event\":\"syn\",\"time\":%.6f,\"remote\":\"%s:%u\"}\n", now(), ip4addr_ntoa(&a), sport);
	fflush(stdout);
	struct tcp_pcb *lists[2] = {tcp_active_pcbs, tcp_tw_pcbs};
	for (int l = 0; l < 2; l++)
		for (struct tcp_pcb *q = lists[l]; q != NULL; q = q->next)
			if (q->remote_port == sport && ip_2_ip4(&q->remote_ip)->addr == src)
				return 0;
	return 1;
}

/* acks_own_fin reports whether a frame is a TCP segment without RST whose
 * acknowledgment covers the FIN of a pcb waiting for it (FIN_WAIT_1,
 * CLOSING, LAST_ACK): what -busyclose drops. */
static int acks_own_fin(struct pbuf *p)
{
	u8_t buf[SIZEOF_ETH_HDR + 60 + 20];
	u8_t *ip, *th;
	if (!tcp_headers(p, buf, &ip, &th))
		return 0;
	u8_t flags = th[13];
	if ((flags & TCP_ACK) == 0 || (flags & TCP_RST) != 0)
		return 0;
	u16_t sport = (u16_t)(th[0] << 8 | th[1]), dport = (u16_t)(th[2] << 8 | th[3]);
	u32_t src, ackno;
	memcpy(&src, ip + 12, 4);
	memcpy(&ackno, th + 8, 4);
	ackno = lwip_ntohl(ackno);
	for (struct tcp_pcb *q = tcp_active_pcbs; q != NULL; q = q->next) {
		if (q->remote_port != sport || q->local_port != dport || ip_2_ip4(&q->remote_ip)->addr != src)
			continue;
		if (q->state != FIN_WAIT_1 && q->state != CLOSING && q->state != LAST_ACK)
			return 0;
		/* with nothing left unsent, the FIN is out and snd_nxt past it */
		return q->unsent == NULL && ackno == q->snd_nxt;
	}
	return 0;
}

/* input runs in the tap reader thread for every received frame: it keeps
 * the pcb pool as the ESP8266's before handing the frame to lwIP. With a
 * pool the frame is processed right here, under the same core lock as the
 * check (as LWIP_TCPIP_CORE_LOCKING_INPUT does), so that SYNs arriving in
 * a burst each see the pcbs the ones before them made; queued to the
 * tcpip thread they would all be checked before any pcb exists. */
static err_t input(struct pbuf *p, struct netif *inp)
{
	if (opt.pool > 0 || opt.busy_close) {
		err_t err = ERR_OK;
		LOCK_TCPIP_CORE();
		if (opt.busy_close && acks_own_fin(p)) {
			cnt.busy_dropped++;
			pbuf_free(p);
			UNLOCK_TCPIP_CORE();
			return ERR_OK;
		}
		if (opt.pool > 0 && needs_new_pcb(p)) {
			while (pcb_count() >= opt.pool)
				if (!kill_one())
					break;
			if (pcb_count() >= opt.pool) {
				cnt.dropped_syns++;
				pbuf_free(p);
				UNLOCK_TCPIP_CORE();
				return ERR_OK;
			}
		}
		err = ethernet_input(p, inp);
		UNLOCK_TCPIP_CORE();
		return err;
	}
	return tap_input(p, inp);
}

/* tw_tick aborts TIME_WAIT pcbs older than -timewait; it runs in the tcpip
 * thread every 20 ms. */
static void tw_tick(void *arg)
{
	(void)arg;
	double t = now();
	size_t kept = 0;
	/* keep the entries whose pcb is still in TIME_WAIT */
	for (size_t i = 0; i < tw_len; i++) {
		for (struct tcp_pcb *p = tcp_tw_pcbs; p != NULL; p = p->next) {
			if (p == tw_seen[i].pcb) {
				tw_seen[kept++] = tw_seen[i];
				break;
			}
		}
	}
	tw_len = kept;
	for (struct tcp_pcb *p = tcp_tw_pcbs; p != NULL;) {
		struct tcp_pcb *next = p->next;
		size_t i;
		for (i = 0; i < tw_len && tw_seen[i].pcb != p; i++)
			;
		if (i == tw_len) {
			if (tw_len == tw_cap) {
				tw_cap = tw_cap ? tw_cap * 2 : 16;
				tw_seen = realloc(tw_seen, tw_cap * sizeof *tw_seen);
				if (tw_seen == NULL) {
					perror("closeduel-device: realloc");
					exit(1);
				}
			}
			tw_seen[tw_len].pcb = p;
			tw_seen[tw_len].since = t;
			tw_len++;
		} else if ((t - tw_seen[i].since) * 1000 >= opt.timewait_ms) {
			emit_event("tw_expire", p, "");
			cnt.tw_expired++;
			tw_seen[i] = tw_seen[--tw_len];
			tcp_abort(p);
		}
		p = next;
	}
	sys_timeout(20, tw_tick, NULL);
}

static void usage(const char *msg)
{
	fprintf(stderr, "closeduel-device: %s\n"
	                "usage: closeduel-device [-addr A.B.C.D/N] [-port N] [-close close|wait|abort]\n"
	                "                        [-size N] [-pool N] [-timewait MS] [-busyclose 0|1]\n"
	                "                        [-mac XX:XX:XX:XX:XX:XX]\n",
	        msg);
	exit(2);
}

static long parse_num(const char *flag, const char *s, long lo, long hi)
{
	char *end;
	long v = strtol(s, &end, 10);
	if (*s == '\0' || *end != '\0' || v < lo || v > hi) {
		char msg[128];
		snprintf(msg, sizeof msg, "%s: %s is not a number in [%ld, %ld]", flag, s, lo, hi);
		usage(msg);
	}
	return v;
}

static void parse_args(int argc, char **argv)
{
	IP4_ADDR(&opt.addr, 192, 168, 100, 99);
	IP4_ADDR(&opt.mask, 255, 255, 255, 0);
	opt.port = 80;
	opt.mode = CLOSE_AFTER_SEND;
	opt.size = 32;
	opt.pool = 5;
	opt.timewait_ms = 0;
	const u8_t mac[6] = {0x02, 0x12, 0x34, 0x56, 0x78, 0xab};
	memcpy(opt.mac, mac, 6);
	for (int i = 1; i < argc; i++) {
		const char *flag = argv[i];
		if (i + 1 >= argc)
			usage("missing value after the last flag");
		const char *val = argv[++i];
		if (strcmp(flag, "-addr") == 0) {
			char buf[32];
			snprintf(buf, sizeof buf, "%s", val);
			char *slash = strchr(buf, '/');
			int bits = 24;
			if (slash != NULL) {
				*slash = '\0';
				bits = (int)parse_num("-addr", slash + 1, 1, 32);
			}
			if (!ip4addr_aton(buf, &opt.addr))
				usage("-addr: not an IPv4 address");
			opt.mask.addr = lwip_htonl(bits == 32 ? 0xffffffffu : ~(0xffffffffu >> bits));
		} else if (strcmp(flag, "-port") == 0) {
			opt.port = (u16_t)parse_num(flag, val, 1, 65535);
		} else if (strcmp(flag, "-close") == 0) {
			int found = 0;
			for (int m = 0; m < 3; m++)
				if (strcmp(val, mode_names[m]) == 0) {
					opt.mode = (enum close_mode)m;
					found = 1;
				}
			if (!found)
				usage("-close: want close, wait or abort");
		} else if (strcmp(flag, "-size") == 0) {
			opt.size = (int)parse_num(flag, val, 0, 60000);
		} else if (strcmp(flag, "-pool") == 0) {
			opt.pool = (int)parse_num(flag, val, 0, 100000);
		} else if (strcmp(flag, "-busyclose") == 0) {
			opt.busy_close = (int)parse_num(flag, val, 0, 1);
		} else if (strcmp(flag, "-timewait") == 0) {
			opt.timewait_ms = parse_num(flag, val, 0, 3600000);
		} else if (strcmp(flag, "-mac") == 0) {
			unsigned int m[6];
			if (sscanf(val, "%x:%x:%x:%x:%x:%x", &m[0], &m[1], &m[2], &m[3], &m[4], &m[5]) != 6)
				usage("-mac: want XX:XX:XX:XX:XX:XX");
			for (int k = 0; k < 6; k++)
				opt.mac[k] = (u8_t)m[k];
		} else {
			usage("unknown flag");
		}
	}
}

static void build_response(void)
{
	char head[160];
	int n = snprintf(head, sizeof head,
	                 "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n"
	                 "Connection: close\r\n\r\n",
	                 opt.size);
	response_len = n + opt.size;
	response = malloc((size_t)response_len);
	if (response == NULL) {
		perror("closeduel-device: malloc");
		exit(1);
	}
	memcpy(response, head, (size_t)n);
	for (int i = 0; i < opt.size; i++)
		response[n + i] = i == opt.size - 1 ? '\n' : "closeduel"[i % 9];
}

int main(int argc, char **argv)
{
	parse_args(argc, argv);
	build_response();
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (getenv("PRECONFIGURED_TAPIF") == NULL)
		setenv("PRECONFIGURED_TAPIF", "tap0", 1);

	/* Block the signals in every thread; main takes them with sigwait. */
	sigset_t sigs;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGUSR1);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);

	tcpip_init(NULL, NULL);

	LOCK_TCPIP_CORE();
	ip4_addr_t gw;
	ip4_addr_set_zero(&gw);
	tap_input = tcpip_input;
	if (netif_add(&tap, &opt.addr, &opt.mask, &gw, NULL, tapif_init, input) == NULL) {
		UNLOCK_TCPIP_CORE();
		fprintf(stderr, "closeduel-device: netif_add on tap %s failed\n", getenv("PRECONFIGURED_TAPIF"));
		return 1;
	}
	memcpy(tap.hwaddr, opt.mac, 6);
	tap.hwaddr_len = 6;
	netif_set_default(&tap);
	netif_set_up(&tap);
	netif_set_link_up(&tap);

	struct tcp_pcb *pcb = tcp_new_ip_type(IPADDR_TYPE_V4);
	if (pcb == NULL || tcp_bind(pcb, IP4_ADDR_ANY, opt.port) != ERR_OK) {
		UNLOCK_TCPIP_CORE();
		fprintf(stderr, "closeduel-device: cannot bind port %u\n", opt.port);
		return 1;
	}
	listener = tcp_listen_with_backlog(pcb, 16);
	tcp_accept(listener, on_accept);
	if (opt.timewait_ms > 0)
		sys_timeout(20, tw_tick, NULL);
	char mac[18];
	snprintf(mac, sizeof mac, "%02x:%02x:%02x:%02x:%02x:%02x", opt.mac[0], opt.mac[1], opt.mac[2],
	         opt.mac[3], opt.mac[4], opt.mac[5]);
	printf("{\"event\":\"ready\",\"time\":%.6f,\"addr\":\"%s\",\"port\":%u,\"mac\":\"%s\",\"tap\":\"%s\","
	       "\"lwip\":\"%s\",\"close\":\"%s\",\"size\":%d,\"pool\":%d,\"timewait_ms\":%ld,\"busy_close\":%d,\"tcp_msl_ms\":%ld}\n",
	       now(), ip4addr_ntoa(&opt.addr), opt.port, mac, getenv("PRECONFIGURED_TAPIF"), LWIP_VERSION_STRING,
	       mode_names[opt.mode], opt.size, opt.pool, opt.timewait_ms, opt.busy_close, (long)TCP_MSL);
	fflush(stdout);
	UNLOCK_TCPIP_CORE();

	for (;;) {
		int sig;
		if (sigwait(&sigs, &sig) != 0)
			continue;
		LOCK_TCPIP_CORE();
		print_status(sig != SIGUSR1);
		UNLOCK_TCPIP_CORE();
		if (sig != SIGUSR1)
			return 0;
	}
}
