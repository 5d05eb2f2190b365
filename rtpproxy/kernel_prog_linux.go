package rtpproxy

import (
	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
)

// The in-kernel fast path is one tc program (TCX ingress) written with
// cilium/ebpf's assembler, so that building the product needs no C
// toolchain. For every IPv4/UDP packet it looks the destination port up in
// the forwarding map; an entry is a latched two-party stream that
// userspace handed over (see kernel.go). A packet that matches (right
// local address, the latched source address, the stream's SSRC, a
// sequence number that continues it, RTP version 2, not RTCP) is counted
// the way the userspace relay counts (RFC 3550 A.1 sequence, A.8 jitter),
// rewritten to leave from the receiver's endpoint port toward the
// receiver, and passed on up the stack (a receiver on this host) or
// redirected out of the receiver's interface. Anything
// else goes on unchanged to the next program and the socket, so userspace
// sees every packet the kernel does not handle.

// Offsets in the packet: Ethernet (14) + IPv4 without options (20) + UDP (8).
const (
	offIPProto = 14 + 9
	offIPCsum  = 14 + 10
	offIPSrc   = 14 + 12
	offIPDst   = 14 + 16
	offSport   = 14 + 20
	offDport   = 14 + 22
	offUDPLen  = 14 + 24
	offUDPCsum = 14 + 26
	offRTP     = 14 + 28
	minPacket  = offRTP + 12
)

// tcx return codes (include/uapi/linux/bpf.h).
const (
	tcxNext = -1
	tcxPass = 0
)

// Checksum helper flags (include/uapi/linux/bpf.h).
const (
	fPseudoHdr   = 1 << 4
	fMarkMangled = 1 << 5
)

const (
	maxDropoutK  = maxDropout
	maxMisorderK = maxMisorder
)

// fwdProgram assembles the program against the forwarding map fwd and the
// per-CPU totals map tot (one entry: packets, bytes).
func fwdProgram(fwd, tot *ebpf.Map) asm.Instructions {
	const (
		ctx  = asm.R6
		pkt  = asm.R7
		val  = asm.R9
		next = "next"
	)
	return asm.Instructions{
		asm.Mov.Reg(ctx, asm.R1),
		asm.LoadMem(pkt, ctx, 76, asm.Word),     // skb->data
		asm.LoadMem(asm.R8, ctx, 80, asm.Word),  // skb->data_end
		asm.LoadMem(asm.R2, ctx, 176, asm.Word), // skb->gso_size: one datagram only
		asm.JNE.Imm(asm.R2, 0, next),
		asm.Mov.Reg(asm.R2, pkt),
		asm.Add.Imm(asm.R2, minPacket),
		asm.JGT.Reg(asm.R2, asm.R8, next),
		// Ethernet type IPv4, IPv4 without options, UDP, not a fragment
		asm.LoadMem(asm.R2, pkt, 12, asm.Byte),
		asm.JNE.Imm(asm.R2, 0x08, next),
		asm.LoadMem(asm.R2, pkt, 13, asm.Byte),
		asm.JNE.Imm(asm.R2, 0x00, next),
		asm.LoadMem(asm.R2, pkt, 14, asm.Byte),
		asm.JNE.Imm(asm.R2, 0x45, next),
		asm.LoadMem(asm.R2, pkt, offIPProto, asm.Byte),
		asm.JNE.Imm(asm.R2, 17, next),
		asm.LoadMem(asm.R2, pkt, 14+6, asm.Byte),
		asm.And.Imm(asm.R2, 0x3f),
		asm.JNE.Imm(asm.R2, 0, next),
		asm.LoadMem(asm.R2, pkt, 14+7, asm.Byte),
		asm.JNE.Imm(asm.R2, 0, next),
		// RTP version 2, and not RTCP multiplexed on the port (RFC 5761 §4)
		asm.LoadMem(asm.R2, pkt, offRTP, asm.Byte),
		asm.And.Imm(asm.R2, 0xc0),
		asm.JNE.Imm(asm.R2, 0x80, next),
		asm.LoadMem(asm.R2, pkt, offRTP+1, asm.Byte),
		asm.JLT.Imm(asm.R2, 192, "rtp"),
		asm.JLE.Imm(asm.R2, 223, next),
		// key: the destination port as on the wire, zero padded
		asm.StoreImm(asm.RFP, -4, 0, asm.Word).WithSymbol("rtp"),
		asm.LoadMem(asm.R2, pkt, offDport, asm.Half),
		asm.StoreMem(asm.RFP, -4, asm.R2, asm.Half),
		asm.LoadMapPtr(asm.R1, fwd.FD()),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, -4),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, next),
		asm.Mov.Reg(val, asm.R0),
		// the packet is for this endpoint, from the latched party, of the
		// stream userspace saw
		asm.LoadMem(asm.R2, val, vLocalIP, asm.Word),
		asm.JEq.Imm(asm.R2, 0, "anyip"),
		asm.LoadMem(asm.R3, pkt, offIPDst, asm.Word),
		asm.JNE.Reg(asm.R2, asm.R3, next),
		asm.LoadMem(asm.R2, val, vSrcIP, asm.Word).WithSymbol("anyip"),
		asm.LoadMem(asm.R3, pkt, offIPSrc, asm.Word),
		asm.JNE.Reg(asm.R2, asm.R3, next),
		asm.LoadMem(asm.R2, val, vSrcPort, asm.Half),
		asm.LoadMem(asm.R3, pkt, offSport, asm.Half),
		asm.JNE.Reg(asm.R2, asm.R3, next),
		asm.LoadMem(asm.R2, val, vSSRC, asm.Word),
		asm.LoadMem(asm.R3, pkt, offRTP+8, asm.Word),
		asm.JNE.Reg(asm.R2, asm.R3, next),
		// RFC 3550 A.1: r4 = seq - max_seq (mod 2^16). A large jump may be
		// a restart, which userspace judges.
		asm.LoadMem(asm.R2, pkt, offRTP+2, asm.Half),
		asm.HostTo(asm.BE, asm.R2, asm.Half),
		asm.LoadMem(asm.R3, val, vMaxSeq, asm.Half),
		asm.Mov.Reg(asm.R4, asm.R2),
		asm.Sub.Reg(asm.R4, asm.R3),
		asm.And.Imm(asm.R4, 0xffff),
		asm.JLT.Imm(asm.R4, maxDropoutK, "inorder"),
		asm.JLE.Imm(asm.R4, seqMod-maxMisorderK, next),
		asm.Ja.Label("counted"), // duplicate or reordered: no sequence change
		asm.JGE.Reg(asm.R2, asm.R3, "setmax").WithSymbol("inorder"),
		asm.LoadMem(asm.R5, val, vCycles, asm.Word),
		asm.Add.Imm(asm.R5, seqMod),
		asm.StoreMem(val, vCycles, asm.R5, asm.Word),
		asm.StoreMem(val, vMaxSeq, asm.R2, asm.Half).WithSymbol("setmax"),
		// RFC 3550 A.8 jitter, with the arrival time in RTP units as
		// arrivalUnits computes it
		asm.FnKtimeGetNs.Call().WithSymbol("counted"),
		asm.LoadMem(asm.R2, val, vEpoch, asm.DWord),
		asm.Sub.Reg(asm.R0, asm.R2),
		asm.StoreMem(val, vLast, asm.R0, asm.DWord),
		asm.Div.Imm(asm.R0, 1000),
		asm.LoadMem(asm.R2, val, vClock, asm.Word),
		asm.Mul.Reg(asm.R0, asm.R2),
		asm.Div.Imm(asm.R0, 1000000),
		asm.LoadMem(asm.R2, pkt, offRTP+4, asm.Word),
		asm.HostTo(asm.BE, asm.R2, asm.Word),
		asm.Sub.Reg32(asm.R0, asm.R2), // transit
		asm.LoadMem(asm.R3, val, vTransit, asm.Word),
		asm.StoreMem(val, vTransit, asm.R0, asm.Word),
		asm.Sub.Reg32(asm.R0, asm.R3),
		asm.LSh.Imm(asm.R0, 32),
		asm.ArSh.Imm(asm.R0, 32),
		asm.JSGE.Imm(asm.R0, 0, "pos"),
		asm.Neg.Imm(asm.R0, 0),
		asm.LoadMem(asm.R3, val, vJitter, asm.Word).WithSymbol("pos"),
		asm.Mov.Reg(asm.R4, asm.R3),
		asm.Add.Imm(asm.R4, 8),
		asm.RSh.Imm(asm.R4, 4),
		asm.Add.Reg32(asm.R3, asm.R0),
		asm.Sub.Reg32(asm.R3, asm.R4),
		asm.StoreMem(val, vJitter, asm.R3, asm.Word),
		// counters: the RTP bytes, as userspace counts them
		asm.Mov.Imm(asm.R2, 1),
		asm.AddAtomic.Mem(val, asm.R2, asm.DWord, vPackets),
		asm.LoadMem(asm.R8, pkt, offUDPLen, asm.Half),
		asm.HostTo(asm.BE, asm.R8, asm.Half),
		asm.Add.Imm(asm.R8, -8),
		// rewrite: from the receiver's endpoint (the address the party
		// sent to stays the source address) to the receiver
		asm.LoadMem(asm.R2, pkt, offIPSrc, asm.Word),
		asm.StoreMem(asm.RFP, -8, asm.R2, asm.Word), // old source
		asm.LoadMem(asm.R3, pkt, offIPDst, asm.Word),
		asm.StoreMem(pkt, offIPSrc, asm.R3, asm.Word),
		asm.LoadMem(asm.R3, val, vOutDaddr, asm.Word),
		asm.StoreMem(asm.RFP, -12, asm.R3, asm.Word), // new destination
		asm.StoreMem(pkt, offIPDst, asm.R3, asm.Word),
		asm.LoadMem(asm.R2, pkt, offSport, asm.Word),
		asm.StoreMem(asm.RFP, -16, asm.R2, asm.Word), // old ports
		asm.LoadMem(asm.R3, val, vOutPorts, asm.Word),
		asm.StoreMem(asm.RFP, -20, asm.R3, asm.Word), // new ports
		asm.StoreMem(pkt, offSport, asm.R3, asm.Word),
		// The source address became the old destination and the
		// destination the receiver: the sum of the addresses changed by
		// (receiver - old source), in the IP header and in the UDP
		// pseudo-header.
		asm.Mov.Reg(asm.R1, ctx),
		asm.Mov.Imm(asm.R2, offIPCsum),
		asm.LoadMem(asm.R3, asm.RFP, -8, asm.Word),
		asm.LoadMem(asm.R4, asm.RFP, -12, asm.Word),
		asm.Mov.Imm(asm.R5, 4),
		asm.FnL3CsumReplace.Call(),
		asm.Mov.Reg(asm.R1, ctx),
		asm.Mov.Imm(asm.R2, offUDPCsum),
		asm.LoadMem(asm.R3, asm.RFP, -8, asm.Word),
		asm.LoadMem(asm.R4, asm.RFP, -12, asm.Word),
		asm.Mov.Imm(asm.R5, fPseudoHdr|fMarkMangled|4),
		asm.FnL4CsumReplace.Call(),
		asm.Mov.Reg(asm.R1, ctx),
		asm.Mov.Imm(asm.R2, offUDPCsum),
		asm.LoadMem(asm.R3, asm.RFP, -16, asm.Word),
		asm.LoadMem(asm.R4, asm.RFP, -20, asm.Word),
		asm.Mov.Imm(asm.R5, fMarkMangled|4),
		asm.FnL4CsumReplace.Call(),
		asm.AddAtomic.Mem(val, asm.R8, asm.DWord, vBytes),
		// proxy-wide totals, for Metrics
		asm.StoreImm(asm.RFP, -4, 0, asm.Word),
		asm.LoadMapPtr(asm.R1, tot.FD()),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, -4),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "pass"),
		asm.LoadMem(asm.R2, asm.R0, 0, asm.DWord),
		asm.Add.Imm(asm.R2, 1),
		asm.StoreMem(asm.R0, 0, asm.R2, asm.DWord),
		asm.LoadMem(asm.R2, asm.R0, 8, asm.DWord),
		asm.Add.Reg(asm.R2, asm.R8),
		asm.StoreMem(asm.R0, 8, asm.R2, asm.DWord),
		// A receiver on this host: the stack delivers the rewritten
		// packet to its socket. Elsewhere: out of the interface userspace
		// found the route on, with the next hop's link-layer address
		// resolved by the neighbour table (bpf_redirect_neigh routes the
		// new destination itself, so neither forwarding nor a
		// precomputed MAC is needed).
		asm.LoadMem(asm.R1, val, vOutIfindex, asm.Word).WithSymbol("pass"),
		asm.JNE.Imm(asm.R1, 0, "redirect"),
		asm.Mov.Imm(asm.R0, tcxPass),
		asm.Return(),
		asm.Mov.Imm(asm.R2, 0).WithSymbol("redirect"),
		asm.Mov.Imm(asm.R3, 0),
		asm.Mov.Imm(asm.R4, 0),
		asm.FnRedirectNeigh.Call(),
		asm.Return(),
		asm.Mov.Imm(asm.R0, tcxNext).WithSymbol(next),
		asm.Return(),
	}
}
