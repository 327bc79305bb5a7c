//! DocSpace `MessageAction` codes and names.
//!
//! Checked against the public repository `ONLYOFFICE/DocSpace-server`, file
//! `common/ASC.Core.Common/Messaging/MessageAction.cs`, branch `master` at commit
//! `ed2994e74f9de78af63e73f425b060345a262536` ("Merge hotfix/v3.7.2 into master",
//! 2026-06-30). Every member there is listed with its numeric value, except `None = -1`
//! (the "no filter" sentinel). All members carry explicit values; there are no aliases.
//!
//! The table also keeps every code of its first transcription, which was read from a newer
//! revision (commit `065ebb526f171be94f8329d0d7ed848b20a91db4`, on no branch of the
//! DocSpace-server snapshot that was read):
//! - 27 codes are not in master (marked `// not in master` beside them). 6100 is on
//!   `develop` and `release/v3.8.0`, 6101 on a feature branch; 5161–5163, 5205, 5206 and 6100–6109
//!   are also in public SDK docs of a newer server, and the metadata names of 9910–9919 in
//!   public server code; 5207 and 7005 were found nowhere else. They are kept: a newer
//!   server may write them, and a name a SIEM already indexes must not change.
//! - 5051 and 5052 (`PrivacyRoomEnable`/`PrivacyRoomDisable`) are in master but were
//!   removed on `develop` (commit `07c3d1c27e`, "Remove Privacy Room feature"). They are
//!   kept, since old rows in a portal's log still carry them.
//!
//! A code is never given a new name here: when upstream drops a member, its row stays with
//! a comment, because rows already written keep the code.
//!
//! Codes 1000–1999 are login events (stored in `login_events`, served by the
//! login-history API); codes ≥ 2000 are audit events (stored in `audit_events`,
//! served by the audit-trail API).
//!
//! DocSpace keeps adding members, so callers must expect codes that are not in
//! this table: [`lookup`] and [`kebab`] then return `None`, and the encoders write the
//! numeric code unchanged with a neutral name (`Action<code>`, kebab `action-<code>`).

/// One `MessageAction` member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Action {
    /// Numeric code as sent in `actionId`.
    pub code: i32,
    /// The C# enum member name, e.g. `LoginFailBruteForce`.
    pub name: &'static str,
}

/// Every known member, sorted by code ascending, no duplicate codes.
#[rustfmt::skip]
pub static ACTIONS: &[Action] = &[
    Action { code: 1000, name: "LoginSuccess" },
    Action { code: 1001, name: "LoginSuccessViaSocialAccount" },
    Action { code: 1002, name: "LoginFailInvalidCombination" },
    Action { code: 1003, name: "LoginFailSocialAccountNotFound" },
    Action { code: 1004, name: "LoginFailDisabledProfile" },
    Action { code: 1005, name: "LoginFail" },
    Action { code: 1006, name: "Logout" },
    Action { code: 1007, name: "LoginSuccessViaSms" },
    Action { code: 1008, name: "LoginFailViaSms" },
    Action { code: 1009, name: "LoginFailIpSecurity" },
    Action { code: 1010, name: "LoginSuccessViaApi" },
    Action { code: 1011, name: "LoginSuccessViaSocialApp" },
    Action { code: 1012, name: "LoginSuccessViaApiSms" },
    Action { code: 1013, name: "LoginFailViaApi" },
    Action { code: 1014, name: "LoginFailViaApiSms" },
    Action { code: 1015, name: "LoginSuccessViaSSO" },
    Action { code: 1016, name: "SessionStarted" },
    Action { code: 1017, name: "SessionCompleted" },
    Action { code: 1018, name: "LoginFailViaSSO" },
    Action { code: 1019, name: "LoginSuccessViaApiSocialAccount" },
    Action { code: 1020, name: "LoginFailViaApiSocialAccount" },
    Action { code: 1021, name: "LoginSuccesViaTfaApp" },
    Action { code: 1022, name: "LoginFailViaTfaApp" },
    Action { code: 1023, name: "LoginFailBruteForce" },
    Action { code: 1024, name: "LoginSuccessViaApiTfa" },
    Action { code: 1025, name: "LoginFailViaApiTfa" },
    Action { code: 1026, name: "LoginFailRecaptcha" },
    Action { code: 1027, name: "AuthLinkActivated" },
    Action { code: 1028, name: "LoginSuccessViaOAuth" },
    Action { code: 1029, name: "LoginSuccessViaPassword" },
    Action { code: 4000, name: "UserCreated" },
    Action { code: 4001, name: "GuestCreated" },
    Action { code: 4002, name: "UserCreatedViaInvite" },
    Action { code: 4003, name: "GuestCreatedViaInvite" },
    Action { code: 4004, name: "UserActivated" },
    Action { code: 4005, name: "GuestActivated" },
    Action { code: 4006, name: "UserUpdated" },
    Action { code: 4007, name: "UserUpdatedLanguage" },
    Action { code: 4008, name: "UserAddedAvatar" },
    Action { code: 4009, name: "UserDeletedAvatar" },
    Action { code: 4010, name: "UserUpdatedAvatarThumbnails" },
    Action { code: 4011, name: "UserLinkedSocialAccount" },
    Action { code: 4012, name: "UserUnlinkedSocialAccount" },
    Action { code: 4013, name: "UserSentActivationInstructions" },
    Action { code: 4014, name: "UserSentEmailChangeInstructions" },
    Action { code: 4015, name: "UserSentPasswordChangeInstructions" },
    Action { code: 4016, name: "UserSentDeleteInstructions" },
    Action { code: 4017, name: "UserUpdatedPassword" },
    Action { code: 4018, name: "UserDeleted" },
    Action { code: 4019, name: "UsersUpdatedType" },
    Action { code: 4020, name: "UsersUpdatedStatus" },
    Action { code: 4021, name: "UsersSentActivationInstructions" },
    Action { code: 4022, name: "UsersDeleted" },
    Action { code: 4023, name: "SentInviteInstructions" },
    Action { code: 4024, name: "UserImported" },
    Action { code: 4025, name: "GuestImported" },
    Action { code: 4026, name: "GroupCreated" },
    Action { code: 4027, name: "GroupUpdated" },
    Action { code: 4028, name: "GroupDeleted" },
    Action { code: 4029, name: "UserUpdatedMobileNumber" },
    Action { code: 4030, name: "UserDataReassigns" },
    Action { code: 4031, name: "UserDataRemoving" },
    Action { code: 4032, name: "UserConnectedTfaApp" },
    Action { code: 4033, name: "UserDisconnectedTfaApp" },
    Action { code: 4034, name: "UserLogoutActiveConnections" },
    Action { code: 4035, name: "UserLogoutActiveConnection" },
    Action { code: 4036, name: "UserLogoutActiveConnectionsForUser" },
    Action { code: 4037, name: "SendJoinInvite" },
    Action { code: 5000, name: "FileCreated" },
    Action { code: 5001, name: "FileRenamed" },
    Action { code: 5002, name: "FileUpdated" },
    Action { code: 5003, name: "FileCreatedVersion" },
    Action { code: 5004, name: "FileDeletedVersion" },
    Action { code: 5005, name: "FileUpdatedRevisionComment" },
    Action { code: 5006, name: "FileLocked" },
    Action { code: 5007, name: "FileUnlocked" },
    Action { code: 5008, name: "FileUpdatedAccess" },
    Action { code: 5009, name: "FileDownloaded" },
    Action { code: 5010, name: "FileDownloadedAs" },
    Action { code: 5011, name: "FileUploaded" },
    Action { code: 5012, name: "FileImported" },
    Action { code: 5013, name: "FileCopied" },
    Action { code: 5014, name: "FileCopiedWithOverwriting" },
    Action { code: 5015, name: "FileMoved" },
    Action { code: 5016, name: "FileMovedWithOverwriting" },
    Action { code: 5017, name: "FileMovedToTrash" },
    Action { code: 5018, name: "FileDeleted" },
    Action { code: 5019, name: "FolderCreated" },
    Action { code: 5020, name: "FolderRenamed" },
    Action { code: 5021, name: "FolderUpdatedAccess" },
    Action { code: 5022, name: "FolderCopied" },
    Action { code: 5023, name: "FolderCopiedWithOverwriting" },
    Action { code: 5024, name: "FolderMoved" },
    Action { code: 5025, name: "FolderMovedWithOverwriting" },
    Action { code: 5026, name: "FolderMovedToTrash" },
    Action { code: 5027, name: "FolderDeleted" },
    Action { code: 5028, name: "ThirdPartyCreated" },
    Action { code: 5029, name: "ThirdPartyUpdated" },
    Action { code: 5030, name: "ThirdPartyDeleted" },
    Action { code: 5031, name: "DocumentsThirdPartySettingsUpdated" },
    Action { code: 5032, name: "DocumentsOverwritingSettingsUpdated" },
    Action { code: 5033, name: "DocumentsUploadingFormatsSettingsUpdated" },
    Action { code: 5034, name: "UserFileUpdated" },
    Action { code: 5035, name: "FileConverted" },
    Action { code: 5036, name: "FileSendAccessLink" },
    Action { code: 5037, name: "DocumentServiceLocationSetting" },
    Action { code: 5038, name: "AuthorizationKeysSetting" },
    Action { code: 5039, name: "FullTextSearchSetting" },
    Action { code: 5040, name: "StartTransferSetting" },
    Action { code: 5041, name: "BackupStarted" },
    Action { code: 5042, name: "LicenseKeyUploaded" },
    Action { code: 5043, name: "FileChangeOwner" },
    Action { code: 5044, name: "FileRestoreVersion" },
    Action { code: 5045, name: "DocumentSendToSign" },
    Action { code: 5046, name: "DocumentSignComplete" },
    Action { code: 5047, name: "UserUpdatedEmail" },
    Action { code: 5048, name: "DocumentsStoreForcesave" },
    Action { code: 5049, name: "DocumentsForcesave" },
    Action { code: 5050, name: "StartStorageEncryption" },
    Action { code: 5051, name: "PrivacyRoomEnable" }, // master; removed on develop (07c3d1c27e)
    Action { code: 5052, name: "PrivacyRoomDisable" }, // master; removed on develop (07c3d1c27e)
    Action { code: 5053, name: "StartStorageDecryption" },
    Action { code: 5054, name: "FileOpenedForChange" },
    Action { code: 5055, name: "FileMarkedAsFavorite" },
    Action { code: 5056, name: "FileRemovedFromFavorite" },
    Action { code: 5057, name: "FolderDownloaded" },
    Action { code: 5058, name: "FileRemovedFromList" },
    Action { code: 5059, name: "FolderRemovedFromList" },
    Action { code: 5060, name: "FileExternalLinkAccessUpdated" },
    Action { code: 5061, name: "TrashEmptied" },
    Action { code: 5062, name: "FileRevisionDownloaded" },
    Action { code: 5063, name: "FileMarkedAsRead" },
    Action { code: 5064, name: "FileReaded" },
    Action { code: 5065, name: "FolderMarkedAsRead" },
    Action { code: 5066, name: "FolderUpdatedAccessFor" },
    Action { code: 5068, name: "FileUpdatedAccessFor" },
    Action { code: 5069, name: "DocumentsExternalShareSettingsUpdated" },
    Action { code: 5070, name: "RoomCreated" },
    Action { code: 5071, name: "RoomRenamed" },
    Action { code: 5072, name: "RoomArchived" },
    Action { code: 5073, name: "RoomUnarchived" },
    Action { code: 5074, name: "RoomDeleted" },
    Action { code: 5075, name: "RoomUpdateAccessForUser" },
    Action { code: 5076, name: "TagCreated" },
    Action { code: 5077, name: "TagsDeleted" },
    Action { code: 5078, name: "AddedRoomTags" },
    Action { code: 5079, name: "DeletedRoomTags" },
    Action { code: 5080, name: "RoomLogoCreated" },
    Action { code: 5081, name: "RoomLogoDeleted" },
    Action { code: 5082, name: "RoomInvitationLinkUpdated" },
    Action { code: 5083, name: "DocumentsKeepNewFileNameSettingsUpdated" },
    Action { code: 5084, name: "RoomRemoveUser" },
    Action { code: 5085, name: "RoomCreateUser" },
    Action { code: 5086, name: "RoomInvitationLinkCreated" },
    Action { code: 5087, name: "RoomInvitationLinkDeleted" },
    Action { code: 5088, name: "RoomExternalLinkCreated" },
    Action { code: 5089, name: "RoomExternalLinkUpdated" },
    Action { code: 5090, name: "RoomExternalLinkDeleted" },
    Action { code: 5091, name: "FileExternalLinkCreated" },
    Action { code: 5092, name: "FileExternalLinkUpdated" },
    Action { code: 5093, name: "FileExternalLinkDeleted" },
    Action { code: 5094, name: "RoomGroupAdded" },
    Action { code: 5095, name: "RoomUpdateAccessForGroup" },
    Action { code: 5096, name: "RoomGroupRemove" },
    Action { code: 5097, name: "RoomExternalLinkRevoked" },
    Action { code: 5098, name: "RoomExternalLinkRenamed" },
    Action { code: 5099, name: "FileUploadedWithOverwriting" },
    Action { code: 5100, name: "RoomCopied" },
    Action { code: 5101, name: "DocumentsDisplayFileExtensionUpdated" },
    Action { code: 5102, name: "RoomColorChanged" },
    Action { code: 5103, name: "RoomCoverChanged" },
    Action { code: 5104, name: "RoomIndexingChanged" },
    Action { code: 5105, name: "RoomDenyDownloadChanged" },
    Action { code: 5106, name: "RoomIndexExportSaved" },
    Action { code: 5107, name: "FolderIndexChanged" },
    Action { code: 5108, name: "FolderIndexReordered" },
    Action { code: 5109, name: "RoomDenyDownloadEnabled" },
    Action { code: 5110, name: "RoomDenyDownloadDisabled" },
    Action { code: 5111, name: "FileIndexChanged" },
    Action { code: 5112, name: "RoomWatermarkSet" },
    Action { code: 5113, name: "RoomWatermarkDisabled" },
    Action { code: 5114, name: "RoomIndexingEnabled" },
    Action { code: 5115, name: "RoomIndexingDisabled" },
    Action { code: 5116, name: "RoomLifeTimeSet" },
    Action { code: 5117, name: "RoomLifeTimeDisabled" },
    Action { code: 5118, name: "RoomInviteResend" },
    Action { code: 5119, name: "FileVersionRemoved" },
    Action { code: 5120, name: "FileCustomFilterEnabled" },
    Action { code: 5121, name: "FileCustomFilterDisabled" },
    Action { code: 5122, name: "FolderExternalLinkCreated" },
    Action { code: 5123, name: "FolderExternalLinkUpdated" },
    Action { code: 5124, name: "FolderExternalLinkDeleted" },
    Action { code: 5125, name: "BackupCompleted" },
    Action { code: 5126, name: "BackupFailed" },
    Action { code: 5127, name: "ScheduledBackupStarted" },
    Action { code: 5128, name: "ScheduledBackupCompleted" },
    Action { code: 5129, name: "ScheduledBackupFailed" },
    Action { code: 5130, name: "ScheduledBackupDeleted" },
    Action { code: 5131, name: "BackupCancelled" },
    Action { code: 5132, name: "RestoreStarted" },
    Action { code: 5133, name: "RestoreCancelled" },
    Action { code: 5150, name: "FormStartedToFill" },
    Action { code: 5151, name: "FormPartiallyFilled" },
    Action { code: 5152, name: "FormCompletelyFilled" },
    Action { code: 5153, name: "FormStopped" },
    Action { code: 5154, name: "AgentCreated" },
    Action { code: 5155, name: "AgentRenamed" },
    Action { code: 5156, name: "AgentDeleted" },
    Action { code: 5157, name: "AddedServerToAgent" },
    Action { code: 5158, name: "DeletedServerFromAgent" },
    Action { code: 5159, name: "RoomChangeOwner" },
    Action { code: 5160, name: "DocumentsDefaultTemplatesSettingsUpdated" },
    Action { code: 5161, name: "PrivacyRoomKeyCreated" }, // not in master
    Action { code: 5162, name: "PrivacyRoomKeyUpdated" }, // not in master
    Action { code: 5163, name: "PrivacyRoomKeyDeleted" }, // not in master
    Action { code: 5201, name: "FileSavedButUserQuotaExceeded" },
    Action { code: 5202, name: "FileNotSavedDueToUserQuota" },
    Action { code: 5203, name: "FileSavedButRoomQuotaExceeded" },
    Action { code: 5204, name: "FileNotSavedDueToRoomQuota" },
    Action { code: 5205, name: "FileSavedButTenantQuotaExceeded" }, // not in master
    Action { code: 5206, name: "FileNotSavedDueToTenantQuota" }, // not in master
    Action { code: 5207, name: "DocumentsShowQuickActionsUpdated" }, // not in master
    Action { code: 5501, name: "LdapEnabled" },
    Action { code: 5502, name: "LdapDisabled" },
    Action { code: 5503, name: "LdapSync" },
    Action { code: 6000, name: "LanguageSettingsUpdated" },
    Action { code: 6001, name: "TimeZoneSettingsUpdated" },
    Action { code: 6002, name: "DnsSettingsUpdated" },
    Action { code: 6003, name: "TrustedMailDomainSettingsUpdated" },
    Action { code: 6004, name: "PasswordStrengthSettingsUpdated" },
    Action { code: 6005, name: "TwoFactorAuthenticationSettingsUpdated" },
    Action { code: 6006, name: "AdministratorMessageSettingsUpdated" },
    Action { code: 6007, name: "DefaultStartPageSettingsUpdated" },
    Action { code: 6008, name: "ProductsListUpdated" },
    Action { code: 6009, name: "AdministratorAdded" },
    Action { code: 6010, name: "AdministratorOpenedFullAccess" },
    Action { code: 6011, name: "AdministratorDeleted" },
    Action { code: 6012, name: "UsersOpenedProductAccess" },
    Action { code: 6013, name: "GroupsOpenedProductAccess" },
    Action { code: 6014, name: "ProductAccessOpened" },
    Action { code: 6015, name: "ProductAccessRestricted" },
    Action { code: 6016, name: "ProductAddedAdministrator" },
    Action { code: 6017, name: "ProductDeletedAdministrator" },
    Action { code: 6018, name: "GreetingSettingsUpdated" },
    Action { code: 6019, name: "TeamTemplateChanged" },
    Action { code: 6020, name: "ColorThemeChanged" },
    Action { code: 6021, name: "OwnerSentChangeOwnerInstructions" },
    Action { code: 6022, name: "OwnerUpdated" },
    Action { code: 6023, name: "OwnerSentPortalDeactivationInstructions" },
    Action { code: 6024, name: "OwnerSentPortalDeleteInstructions" },
    Action { code: 6025, name: "PortalDeactivated" },
    Action { code: 6026, name: "PortalDeleted" },
    Action { code: 6027, name: "LoginHistoryReportDownloaded" },
    Action { code: 6028, name: "AuditTrailReportDownloaded" },
    Action { code: 6029, name: "SSOEnabled" },
    Action { code: 6030, name: "SSODisabled" },
    Action { code: 6031, name: "PortalAccessSettingsUpdated" },
    Action { code: 6032, name: "CookieSettingsUpdated" },
    Action { code: 6033, name: "MailServiceSettingsUpdated" },
    Action { code: 6034, name: "CustomNavigationSettingsUpdated" },
    Action { code: 6035, name: "AuditSettingsUpdated" },
    Action { code: 6036, name: "TwoFactorAuthenticationDisabled" },
    Action { code: 6037, name: "TwoFactorAuthenticationEnabledBySms" },
    Action { code: 6038, name: "TwoFactorAuthenticationEnabledByTfaApp" },
    Action { code: 6039, name: "PortalRenamed" },
    Action { code: 6040, name: "QuotaPerRoomChanged" },
    Action { code: 6041, name: "QuotaPerRoomDisabled" },
    Action { code: 6042, name: "QuotaPerUserChanged" },
    Action { code: 6043, name: "QuotaPerUserDisabled" },
    Action { code: 6044, name: "QuotaPerPortalChanged" },
    Action { code: 6045, name: "QuotaPerPortalDisabled" },
    Action { code: 6046, name: "FormSubmit" },
    Action { code: 6047, name: "FormOpenedForFilling" },
    Action { code: 6048, name: "CustomQuotaPerRoomDefault" },
    Action { code: 6049, name: "CustomQuotaPerRoomChanged" },
    Action { code: 6050, name: "CustomQuotaPerRoomDisabled" },
    Action { code: 6051, name: "CustomQuotaPerUserDefault" },
    Action { code: 6052, name: "CustomQuotaPerUserChanged" },
    Action { code: 6053, name: "CustomQuotaPerUserDisabled" },
    Action { code: 6054, name: "DevToolsAccessSettingsChanged" },
    Action { code: 6055, name: "WebhookCreated" },
    Action { code: 6056, name: "WebhookUpdated" },
    Action { code: 6057, name: "WebhookDeleted" },
    Action { code: 6058, name: "ApiKeyCreated" },
    Action { code: 6059, name: "ApiKeyUpdated" },
    Action { code: 6060, name: "ApiKeyDeleted" },
    Action { code: 6061, name: "CustomerWalletToppedUp" },
    Action { code: 6062, name: "CustomerOperationPerformed" },
    Action { code: 6063, name: "CustomerOperationsReportDownloaded" },
    Action { code: 6064, name: "CustomerWalletTopUpSettingsUpdated" },
    Action { code: 6065, name: "CustomerSubscriptionUpdated" },
    Action { code: 6066, name: "BannerSettingsChanged" },
    Action { code: 6067, name: "CustomerWalletServicesSettingsUpdated" },
    Action { code: 6068, name: "QuotaPerAiAgentChanged" },
    Action { code: 6069, name: "QuotaPerAiAgentDisabled" },
    Action { code: 6070, name: "CustomQuotaPerAiAgentDefault" },
    Action { code: 6071, name: "CustomQuotaPerAiAgentChanged" },
    Action { code: 6072, name: "CustomQuotaPerAiAgentDisabled" },
    Action { code: 6073, name: "AIProviderCreated" },
    Action { code: 6074, name: "AIProviderUpdated" },
    Action { code: 6075, name: "AIProviderDeleted" },
    Action { code: 6076, name: "ServerCreated" },
    Action { code: 6077, name: "ServerUpdated" },
    Action { code: 6078, name: "ServerEnabled" },
    Action { code: 6079, name: "ServerDisabled" },
    Action { code: 6080, name: "ServerDeleted" },
    Action { code: 6081, name: "SetWebSearchSettings" },
    Action { code: 6082, name: "ResetWebSearchSettings" },
    Action { code: 6083, name: "SetVectorizationSettings" },
    Action { code: 6084, name: "ResetVectorizationSettings" },
    Action { code: 6085, name: "WebpluginUploaded" },
    Action { code: 6086, name: "WebpluginUpdated" },
    Action { code: 6087, name: "WebpluginDeleted" },
    Action { code: 6088, name: "WhiteLabelSettingsLogoTextUpdated" },
    Action { code: 6089, name: "WhiteLabelSettingsLogosUpdated" },
    Action { code: 6090, name: "WhiteLabelCompanySettingsUpdated" },
    Action { code: 6091, name: "WhiteLabelAdditionalSettingsUpdated" },
    Action { code: 6092, name: "WhiteLabelMailSettingsUpdated" },
    Action { code: 6093, name: "InvitationSettingsUpdated" },
    Action { code: 6094, name: "IPRestrictionsSettingsUpdated" },
    Action { code: 6095, name: "LoginSettingsUpdated" },
    Action { code: 6096, name: "AIDefaultProviderSet" },
    Action { code: 6097, name: "AIAccessEnabled" },
    Action { code: 6098, name: "AIAccessDisabled" },
    Action { code: 6099, name: "UserUpdatedAiSettings" },
    Action { code: 6100, name: "SubscriptionBalanceMovedToWallet" }, // not in master; on develop and release/v3.8.0
    Action { code: 6101, name: "DocsCloudConfigUpdated" }, // not in master; on feature/docscloud-api-client
    Action { code: 6102, name: "DocsCloudQuotaReportDownloaded" }, // not in master
    Action { code: 6103, name: "AiProfileCreated" }, // not in master
    Action { code: 6104, name: "AiProfileUpdated" }, // not in master
    Action { code: 6105, name: "AiProfileDeleted" }, // not in master
    Action { code: 6106, name: "AiProfileAssigned" }, // not in master
    Action { code: 6107, name: "AiProfileUnassigned" }, // not in master
    Action { code: 6108, name: "AiAgentProfileAssigned" }, // not in master
    Action { code: 6109, name: "UpdatedServerOfAgent" }, // not in master
    Action { code: 7000, name: "ContactAdminMailSent" },
    Action { code: 7001, name: "RoomInviteLinkUsed" },
    Action { code: 7002, name: "UserCreatedAndAddedToRoom" },
    Action { code: 7003, name: "GuestCreatedAndAddedToRoom" },
    Action { code: 7004, name: "ContactSalesMailSent" },
    Action { code: 7005, name: "SuspiciousLoginDetected" }, // not in master
    Action { code: 9901, name: "CreateClient" },
    Action { code: 9902, name: "UpdateClient" },
    Action { code: 9903, name: "RegenerateSecret" },
    Action { code: 9904, name: "DeleteClient" },
    Action { code: 9905, name: "ChangeClientActivation" },
    Action { code: 9906, name: "ChangeClientVisibility" },
    Action { code: 9907, name: "RevokeUserClient" },
    Action { code: 9908, name: "GenerateAuthorizationCodeToken" },
    Action { code: 9909, name: "GeneratePersonalAccessToken" },
    Action { code: 9910, name: "MetadataTemplateCreated" }, // not in master
    Action { code: 9911, name: "MetadataTemplateUpdated" }, // not in master
    Action { code: 9912, name: "MetadataTemplateDeleted" }, // not in master
    Action { code: 9913, name: "MetadataFieldCreated" }, // not in master
    Action { code: 9914, name: "MetadataFieldUpdated" }, // not in master
    Action { code: 9915, name: "MetadataFieldDeleted" }, // not in master
    Action { code: 9916, name: "MetadataTemplateAssigned" }, // not in master
    Action { code: 9917, name: "MetadataTemplateUnassigned" }, // not in master
    Action { code: 9918, name: "MetadataValuesUpdated" }, // not in master
    Action { code: 9919, name: "MetadataCascadeStarted" }, // not in master
];

/// Looks a code up (binary search).
#[must_use]
pub fn lookup(code: i64) -> Option<&'static Action> {
    let code = i32::try_from(code).ok()?;
    ACTIONS
        .binary_search_by_key(&code, |a| a.code)
        .ok()
        .and_then(|i| ACTIONS.get(i))
}

/// The kebab-case name of a known code (`login-fail-via-api`), computed once per process.
#[must_use]
pub fn kebab(code: i64) -> Option<&'static str> {
    static KEBAB: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    let code = i32::try_from(code).ok()?;
    let i = ACTIONS.binary_search_by_key(&code, |a| a.code).ok()?;
    let all = KEBAB.get_or_init(|| ACTIONS.iter().map(|a| kebab_case(a.name)).collect());
    all.get(i).map(String::as_str)
}

/// Looks a name up, case-insensitively (linear scan is fine).
#[must_use]
pub fn by_name(name: &str) -> Option<&'static Action> {
    let name = name.trim();
    ACTIONS.iter().find(|a| a.name.eq_ignore_ascii_case(name))
}

/// Converts a `PascalCase` member name to kebab-case.
///
/// `LoginFailBruteForce` -> `login-fail-brute-force`. A run of capitals is one
/// word, except that its last capital starts a new word when followed by a
/// lowercase letter (`SSOLogin` -> `sso-login`, `LoginSuccessViaSSO` ->
/// `login-success-via-sso`). Digits stay attached to the preceding word.
/// Characters other than ASCII letters and digits (`_`, `-`, spaces, ...) act as
/// word separators. Upstream typos are kept (`LoginSuccesViaTfaApp` ->
/// `login-succes-via-tfa-app`).
#[must_use]
pub fn kebab_case(name: &str) -> String {
    // "OAuth" is one word, not "o-auth".
    let name = name.replace("OAuth", "Oauth");
    let chars: Vec<char> = name.chars().collect();
    let mut out = String::with_capacity(name.len() + 8);
    // True when the next pushed character must be preceded by a separator.
    let mut pending_sep = false;
    for (i, &c) in chars.iter().enumerate() {
        if !c.is_alphanumeric() {
            pending_sep = !out.is_empty();
            continue;
        }
        let prev = if i > 0 {
            chars.get(i - 1).copied()
        } else {
            None
        };
        let next = chars.get(i + 1).copied();
        if c.is_uppercase() {
            let boundary = match prev {
                Some(p) if p.is_lowercase() || p.is_ascii_digit() => true,
                Some(p) if p.is_uppercase() => next.is_some_and(char::is_lowercase),
                _ => false,
            };
            if boundary && !out.is_empty() {
                pending_sep = true;
            }
        }
        if pending_sep {
            out.push('-');
            pending_sep = false;
        }
        out.extend(c.to_lowercase());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_sorted_and_unique() {
        assert!(!ACTIONS.is_empty());
        for w in ACTIONS.windows(2) {
            assert!(w[0].code < w[1].code, "{:?} !< {:?}", w[0], w[1]);
        }
        let mut names: Vec<String> = ACTIONS
            .iter()
            .map(|a| a.name.to_ascii_lowercase())
            .collect();
        names.sort();
        let before = names.len();
        names.dedup();
        assert_eq!(before, names.len(), "duplicate names");
    }

    #[test]
    fn login_range_complete() {
        for code in 1000..=1029 {
            assert!(lookup(code).is_some(), "missing login code {code}");
        }
    }

    #[test]
    fn master_codes_present() {
        // Issue 15, docs/docspace-api.md §14.5: master (ed2994e74f) has 5051 and 5052.
        let name = |c| lookup(c).map(|a| a.name);
        assert_eq!(name(5050), Some("StartStorageEncryption"));
        assert_eq!(name(5051), Some("PrivacyRoomEnable"));
        assert_eq!(name(5052), Some("PrivacyRoomDisable"));
        assert_eq!(name(5053), Some("StartStorageDecryption"));
        assert_eq!(super::kebab(5051), Some("privacy-room-enable"));
        // Kept although master lacks them: names a SIEM may already index.
        assert_eq!(name(5161), Some("PrivacyRoomKeyCreated"));
        assert_eq!(name(9919), Some("MetadataCascadeStarted"));
        assert_eq!(ACTIONS.len(), 360);
    }

    /// Codes this build does not know still encode in every format: the numeric code is kept,
    /// the name is the neutral `Action<code>` (`action-<code>` in kebab case), and the output
    /// stays one valid record.
    // See: issue 15 ("Unknown codes must pass through unharmed", docs/docspace-api.md §14.5).
    #[test]
    fn unknown_codes_pass_through_every_format() {
        use crate::event::{Event, PortalInfo, Stream};
        use crate::transform::Format;
        use crate::transform::encode;
        use serde_json::{Value, json};

        let portal = std::sync::Arc::new(PortalInfo::new("main", "https://docspace.example.com"));
        let codes = [
            99_999,
            -5,
            0,
            -1,
            1030,
            1999,
            9920,
            i64::from(i32::MAX),
            i64::from(i32::MIN),
            i64::MAX,
            i64::MIN,
        ];
        for code in codes {
            assert_eq!(lookup(code), None, "{code} is in the table");
            assert_eq!(super::kebab(code), None, "{code} is in the table");
            // `None`: the stream is derived from the code, as for `encode` input.
            for stream in [Some(Stream::Login), Some(Stream::Audit), None] {
                let row = json!({"id": 42, "date": "2025-01-15T14:32:07.0000000+01:00",
                    "actionId": code, "action": "Something new", "ip": "192.0.2.7"});
                let ev = Event::from_json(portal.clone(), stream, row)
                    .unwrap_or_else(|e| panic!("{code}: {e}"));
                assert_eq!(ev.action_id, code);
                assert_eq!(ev.action_name(), format!("Action{code}"));
                assert_eq!(ev.action_kebab(), format!("action-{code}"));
                let text = |format| {
                    let mut out = Vec::new();
                    encode(format, &ev, &mut out);
                    let text = String::from_utf8(out).expect("UTF-8");
                    assert!(!text.contains(['\n', '\r']), "{code} {format:?}: {text}");
                    text
                };

                let cef = text(Format::Cef);
                let head: Vec<&str> = cef.splitn(8, '|').collect();
                assert_eq!(head.len(), 8, "{cef}");
                assert_eq!(head[..3], ["CEF:0", "ONLYOFFICE", "DocSpace"], "{cef}");
                assert_eq!(head[4], code.to_string(), "{cef}");
                assert_eq!(head[5], format!("Action{code}"), "{cef}");
                assert!(head[6].parse::<u8>().is_ok_and(|s| s <= 10), "{cef}");
                assert!(head[7].contains(&format!(" act=Action{code} ")), "{cef}");

                let ecs: Value = serde_json::from_str(&text(Format::Ecs)).expect("ECS is JSON");
                assert_eq!(ecs["docspace"]["action_id"], json!(code));
                assert_eq!(ecs["docspace"]["action_name"], format!("Action{code}"));
                assert_eq!(ecs["docspace"]["action"], "Something new");
                assert_eq!(ecs["event"]["action"], format!("action-{code}"));
                assert_eq!(ecs["event"]["code"], code.to_string());

                let leef = text(Format::Leef);
                let head: Vec<&str> = leef.splitn(7, '|').collect();
                assert_eq!(head.len(), 7, "{leef}");
                assert_eq!(head[..3], ["LEEF:2.0", "ONLYOFFICE", "DocSpace"], "{leef}");
                assert_eq!(head[4], code.to_string(), "{leef}");
                assert_eq!(head[5], "^", "{leef}");
                let attrs: Vec<&str> = head[6].split('^').collect();
                assert!(
                    attrs.contains(&format!("action=Action{code}").as_str()),
                    "{leef}"
                );

                let row: Value = serde_json::from_str(&text(Format::Json)).expect("JSON");
                assert_eq!(row["actionId"], json!(code));
                assert_eq!(row["stream"], ev.stream.as_str());
            }
        }
    }

    #[test]
    fn lookup_known() {
        let name = |c| lookup(c).map(|a| a.name);
        assert_eq!(name(1000), Some("LoginSuccess"));
        assert_eq!(name(1023), Some("LoginFailBruteForce"));
        assert_eq!(name(1029), Some("LoginSuccessViaPassword"));
        assert_eq!(name(5011), Some("FileUploaded"));
        assert_eq!(name(4000), Some("UserCreated"));
        assert_eq!(name(6035), Some("AuditSettingsUpdated"));
        assert_eq!(name(5070), Some("RoomCreated"));
    }

    #[test]
    fn lookup_unknown() {
        assert_eq!(lookup(-1), None);
        assert_eq!(lookup(0), None);
        assert_eq!(lookup(1999), None);
        assert_eq!(lookup(123_456), None);
        assert_eq!(lookup(i64::from(i32::MAX) + 1), None);
        assert_eq!(lookup(i64::MIN), None);
    }

    #[test]
    fn by_name_case_insensitive() {
        assert_eq!(by_name("LoginFailBruteForce").map(|a| a.code), Some(1023));
        assert_eq!(by_name("loginfailbruteforce").map(|a| a.code), Some(1023));
        assert_eq!(by_name("LOGINSUCCESSVIASSO").map(|a| a.code), Some(1015));
        assert_eq!(by_name("fileUploaded").map(|a| a.code), Some(5011));
        assert_eq!(by_name("None"), None);
        assert_eq!(by_name("NoSuchAction"), None);
        assert_eq!(by_name(""), None);
    }

    #[test]
    fn kebab() {
        assert_eq!(kebab_case("LoginFailBruteForce"), "login-fail-brute-force");
        assert_eq!(kebab_case("LoginSuccessViaSSO"), "login-success-via-sso");
        assert_eq!(
            kebab_case("LoginSuccessViaApiSms"),
            "login-success-via-api-sms"
        );
        assert_eq!(
            kebab_case("LoginSuccesViaTfaApp"),
            "login-succes-via-tfa-app"
        );
        assert_eq!(kebab_case("SSOLogin"), "sso-login");
        assert_eq!(kebab_case("SSOEnabled"), "sso-enabled");
        assert_eq!(
            kebab_case("IPRestrictionsSettingsUpdated"),
            "ip-restrictions-settings-updated"
        );
        assert_eq!(kebab_case("Logout"), "logout");
        assert_eq!(kebab_case("Oauth2Login"), "oauth2-login");
        assert_eq!(kebab_case("Abc2def"), "abc2def");
        assert_eq!(kebab_case(""), "");
    }

    #[test]
    fn kebab_all_names_well_formed() {
        for a in ACTIONS {
            let k = kebab_case(a.name);
            assert!(!k.is_empty());
            assert!(
                !k.starts_with('-') && !k.ends_with('-') && !k.contains("--"),
                "{k}"
            );
            assert!(
                k.chars()
                    .all(|c| c == '-' || c.is_ascii_lowercase() || c.is_ascii_digit()),
                "{k}"
            );
            assert_eq!(k.replace('-', ""), a.name.to_ascii_lowercase());
        }
    }
}
