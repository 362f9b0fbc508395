//! IPVS generic netlink messages: the command (`IPVS_CMD_*`) and its
//! attributes, as a `netlink-packet-generic` family payload.

use crate::nla::{CmdAttr, InfoAttr, parse_all};
use netlink_packet_core::{DecodeError, Emitable, ParseableParametrized};
use netlink_packet_generic::{GenlFamily, GenlHeader};

/// `IPVS_GENL_NAME`.
pub const FAMILY_NAME: &str = "IPVS";
/// `IPVS_GENL_VERSION`.
pub const FAMILY_VERSION: u8 = 1;

/// `IPVS_CMD_*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    NewService = 1,
    SetService = 2,
    DelService = 3,
    GetService = 4,
    NewDest = 5,
    SetDest = 6,
    DelDest = 7,
    GetDest = 8,
    NewDaemon = 9,
    DelDaemon = 10,
    GetDaemon = 11,
    SetConfig = 12,
    GetConfig = 13,
    SetInfo = 14,
    GetInfo = 15,
    Zero = 16,
    Flush = 17,
}

impl Command {
    const ALL: [Command; 17] = [
        Self::NewService,
        Self::SetService,
        Self::DelService,
        Self::GetService,
        Self::NewDest,
        Self::SetDest,
        Self::DelDest,
        Self::GetDest,
        Self::NewDaemon,
        Self::DelDaemon,
        Self::GetDaemon,
        Self::SetConfig,
        Self::GetConfig,
        Self::SetInfo,
        Self::GetInfo,
        Self::Zero,
        Self::Flush,
    ];

    fn from_u8(n: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|c| *c as u8 == n)
    }
}

/// One IPVS message: a command and its attributes. The answer to
/// `GET_INFO` (command `SET_INFO`) carries [`InfoAttr`]s in `info`; every
/// other message carries [`CmdAttr`]s in `attrs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpvsMessage {
    pub cmd: Command,
    pub attrs: Vec<CmdAttr>,
    pub info: Vec<InfoAttr>,
}

impl IpvsMessage {
    pub fn new(cmd: Command, attrs: Vec<CmdAttr>) -> Self {
        Self {
            cmd,
            attrs,
            info: Vec::new(),
        }
    }
}

impl GenlFamily for IpvsMessage {
    fn family_name() -> &'static str {
        FAMILY_NAME
    }

    fn command(&self) -> u8 {
        self.cmd as u8
    }

    fn version(&self) -> u8 {
        FAMILY_VERSION
    }
}

impl Emitable for IpvsMessage {
    fn buffer_len(&self) -> usize {
        self.attrs.as_slice().buffer_len() + self.info.as_slice().buffer_len()
    }

    fn emit(&self, buffer: &mut [u8]) {
        let split = self.attrs.as_slice().buffer_len();
        let (attrs, info) = buffer.split_at_mut(split);
        self.attrs.as_slice().emit(attrs);
        self.info.as_slice().emit(info);
    }
}

impl ParseableParametrized<[u8], GenlHeader> for IpvsMessage {
    fn parse_with_param(buf: &[u8], header: GenlHeader) -> Result<Self, DecodeError> {
        let cmd = Command::from_u8(header.cmd)
            .ok_or_else(|| DecodeError::from(format!("unknown IPVS command {}", header.cmd)))?;
        Ok(if cmd == Command::SetInfo {
            Self {
                cmd,
                attrs: Vec::new(),
                info: parse_all(buf)?,
            }
        } else {
            Self::new(cmd, parse_all(buf)?)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nla::InfoAttr;

    #[test]
    fn info_answer_parses_as_info() {
        let buf = [8, 0, 1, 0, 1, 2, 1, 0, 8, 0, 2, 0, 0, 16, 0, 0];
        let header = GenlHeader {
            cmd: Command::SetInfo as u8,
            version: 1,
        };
        let msg = IpvsMessage::parse_with_param(&buf[..], header).unwrap();
        assert_eq!(
            msg.info,
            [InfoAttr::Version(0x010201), InfoAttr::ConnTabSize(4096)]
        );
        assert!(msg.attrs.is_empty());
    }

    #[test]
    fn unknown_command_is_an_error() {
        let header = GenlHeader {
            cmd: 99,
            version: 1,
        };
        assert!(IpvsMessage::parse_with_param(&[][..], header).is_err());
    }
}
