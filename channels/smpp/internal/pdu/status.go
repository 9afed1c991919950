package pdu

import "fmt"

// Command status values (SMPP 3.4 section 5.1.3) that the client treats
// specially.
const (
	StatusOK           uint32 = 0x00000000
	StatusInvMsgLen    uint32 = 0x00000001
	StatusInvCmdLen    uint32 = 0x00000002
	StatusInvCmdID     uint32 = 0x00000003
	StatusInvBndSts    uint32 = 0x00000004
	StatusAlyBnd       uint32 = 0x00000005
	StatusSysErr       uint32 = 0x00000008
	StatusBindFail     uint32 = 0x0000000D
	StatusInvPaswd     uint32 = 0x0000000E
	StatusInvSysID     uint32 = 0x0000000F
	StatusMsgQFul      uint32 = 0x00000014
	StatusInvDstAdr    uint32 = 0x0000000B
	StatusThrottled    uint32 = 0x00000058
	StatusDeliveryFail uint32 = 0x000000FE
	StatusUnknownErr   uint32 = 0x000000FF
	StatusRxTAppN      uint32 = 0x00000064 // ESME receiver temporary app error
)

// StatusInfo names a command_status and says whether retrying the same
// PDU later can succeed.
type StatusInfo struct {
	Name      string
	Temporary bool
}

// statuses lists every SMPP 3.4 command_status with its default class:
// temporary for conditions of the SMSC or the link (system error, queue
// full, throttling, timeouts), permanent for faults in the message itself
// (addresses, lengths, data coding) that a retry would only repeat.
var statuses = map[uint32]StatusInfo{
	0x00000000: {"ESME_ROK", false},
	0x00000001: {"ESME_RINVMSGLEN", false},
	0x00000002: {"ESME_RINVCMDLEN", false},
	0x00000003: {"ESME_RINVCMDID", false},
	0x00000004: {"ESME_RINVBNDSTS", true},
	0x00000005: {"ESME_RALYBND", true},
	0x00000006: {"ESME_RINVPRTFLG", false},
	0x00000007: {"ESME_RINVREGDLVFLG", false},
	0x00000008: {"ESME_RSYSERR", true},
	0x0000000A: {"ESME_RINVSRCADR", false},
	0x0000000B: {"ESME_RINVDSTADR", false},
	0x0000000C: {"ESME_RINVMSGID", false},
	0x0000000D: {"ESME_RBINDFAIL", true},
	0x0000000E: {"ESME_RINVPASWD", false},
	0x0000000F: {"ESME_RINVSYSID", false},
	0x00000011: {"ESME_RCANCELFAIL", false},
	0x00000013: {"ESME_RREPLACEFAIL", false},
	0x00000014: {"ESME_RMSGQFUL", true},
	0x00000015: {"ESME_RINVSERTYP", false},
	0x00000033: {"ESME_RINVNUMDESTS", false},
	0x00000034: {"ESME_RINVDLNAME", false},
	0x00000040: {"ESME_RINVDESTFLAG", false},
	0x00000042: {"ESME_RINVSUBREP", false},
	0x00000043: {"ESME_RINVESMCLASS", false},
	0x00000044: {"ESME_RCNTSUBDL", false},
	0x00000045: {"ESME_RSUBMITFAIL", true},
	0x00000048: {"ESME_RINVSRCTON", false},
	0x00000049: {"ESME_RINVSRCNPI", false},
	0x00000050: {"ESME_RINVDSTTON", false},
	0x00000051: {"ESME_RINVDSTNPI", false},
	0x00000053: {"ESME_RINVSYSTYP", false},
	0x00000054: {"ESME_RINVREPFLAG", false},
	0x00000055: {"ESME_RINVNUMMSGS", false},
	0x00000058: {"ESME_RTHROTTLED", true},
	0x00000061: {"ESME_RINVSCHED", false},
	0x00000062: {"ESME_RINVEXPIRY", false},
	0x00000063: {"ESME_RINVDFTMSGID", false},
	0x00000064: {"ESME_RX_T_APPN", true},
	0x00000065: {"ESME_RX_P_APPN", false},
	0x00000066: {"ESME_RX_R_APPN", false},
	0x00000067: {"ESME_RQUERYFAIL", true},
	0x000000C0: {"ESME_RINVOPTPARSTREAM", false},
	0x000000C1: {"ESME_ROPTPARNOTALLWD", false},
	0x000000C2: {"ESME_RINVPARLEN", false},
	0x000000C3: {"ESME_RMISSINGOPTPARAM", false},
	0x000000C4: {"ESME_RINVOPTPARAMVAL", false},
	0x000000FE: {"ESME_RDELIVERYFAILURE", true},
	0x000000FF: {"ESME_RUNKNOWNERR", true},
}

// Status returns what is known about a command_status. Codes outside the
// table (vendor specific, 0x400-0x4FF and others) are named
// "ESME_0x........" and treated as temporary: an unknown condition should
// not fail a message for good unless the operator says so.
func Status(code uint32) StatusInfo {
	if s, ok := statuses[code]; ok {
		return s
	}
	return StatusInfo{Name: fmt.Sprintf("ESME_0x%08X", code), Temporary: true}
}

// StatusByName finds a command_status by its SMPP name (ESME_RTHROTTLED).
func StatusByName(name string) (uint32, bool) {
	for code, s := range statuses {
		if s.Name == name {
			return code, true
		}
	}
	return 0, false
}

// StatusText renders a command_status as "ESME_RINVDSTADR (0x0000000B)".
func StatusText(code uint32) string {
	return fmt.Sprintf("%s (0x%08X)", Status(code).Name, code)
}
