//! Vocabularies: action types, locations, entries, `MessageAction`, login texts, audit mappings.

// ---------------------------------------------------------------------------------------------
// Vocabularies
// ---------------------------------------------------------------------------------------------

/// `ActionType` (sequential values).
pub(crate) const ACTION_TYPES: &[(&str, i32)] = &[
    ("None", 0),
    ("Create", 1),
    ("Update", 2),
    ("Delete", 3),
    ("Link", 4),
    ("Unlink", 5),
    ("Attach", 6),
    ("Detach", 7),
    ("Send", 8),
    ("Import", 9),
    ("Export", 10),
    ("UpdateAccess", 11),
    ("Download", 12),
    ("Upload", 13),
    ("Copy", 14),
    ("Move", 15),
    ("Reassigns", 16),
    ("Follow", 17),
    ("Unfollow", 18),
    ("Logout", 19),
];

/// `LocationType` (the `moduleType` filter and the `location` field).
pub(crate) const LOCATION_TYPES: &[(&str, i32)] = &[
    ("None", 0),
    ("Files", 1),
    ("Folders", 2),
    ("DocumentsSettings", 3),
    ("Rooms", 27),
    ("Settings", 29),
    ("Contacts", 30),
    ("Agents", 31),
];

/// `EntryType`.
pub(crate) const ENTRY_TYPES: &[(&str, i32)] = &[
    ("None", 0),
    ("File", 1),
    ("Folder", 2),
    ("User", 23),
    ("Group", 24),
    ("Room", 25),
    ("Tag", 26),
    ("Agent", 27),
];

pub(crate) fn table_by_name(table: &[(&str, i32)], name: &str) -> Option<i32> {
    table
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| *v)
}

pub(crate) fn table_defined(table: &[(&str, i32)], value: i64) -> bool {
    table.iter().any(|(_, v)| i64::from(*v) == value)
}

/// Every `MessageAction` member (`common/ASC.Core.Common/Messaging/MessageAction.cs`), as
/// whitespace-separated `Name code` pairs.
pub(crate) const MESSAGE_ACTIONS: &str = "
None -1
LoginSuccess 1000 LoginSuccessViaSocialAccount 1001 LoginFailInvalidCombination 1002
LoginFailSocialAccountNotFound 1003 LoginFailDisabledProfile 1004 LoginFail 1005 Logout 1006
LoginSuccessViaSms 1007 LoginFailViaSms 1008 LoginFailIpSecurity 1009 LoginSuccessViaApi 1010
LoginSuccessViaSocialApp 1011 LoginSuccessViaApiSms 1012 LoginFailViaApi 1013 LoginFailViaApiSms 1014
LoginSuccessViaSSO 1015 SessionStarted 1016 SessionCompleted 1017 LoginFailViaSSO 1018
LoginSuccessViaApiSocialAccount 1019 LoginFailViaApiSocialAccount 1020 LoginSuccesViaTfaApp 1021
LoginFailViaTfaApp 1022 LoginFailBruteForce 1023 LoginSuccessViaApiTfa 1024 LoginFailViaApiTfa 1025
LoginFailRecaptcha 1026 AuthLinkActivated 1027 LoginSuccessViaOAuth 1028 LoginSuccessViaPassword 1029
UserCreated 4000 GuestCreated 4001 UserCreatedViaInvite 4002 GuestCreatedViaInvite 4003 SendJoinInvite 4037
UserActivated 4004 GuestActivated 4005 UserUpdated 4006 UserUpdatedMobileNumber 4029 UserUpdatedLanguage 4007
UserAddedAvatar 4008 UserDeletedAvatar 4009 UserUpdatedAvatarThumbnails 4010 UserLinkedSocialAccount 4011
UserUnlinkedSocialAccount 4012 UserConnectedTfaApp 4032 UserDisconnectedTfaApp 4033
UserSentActivationInstructions 4013 UserSentEmailChangeInstructions 4014 UserSentPasswordChangeInstructions 4015
UserSentDeleteInstructions 4016 UserUpdatedEmail 5047 UserUpdatedPassword 4017 UserDeleted 4018
UsersUpdatedType 4019 UsersUpdatedStatus 4020 UsersSentActivationInstructions 4021 UsersDeleted 4022
SentInviteInstructions 4023 UserImported 4024 GuestImported 4025 GroupCreated 4026 GroupUpdated 4027
GroupDeleted 4028 UserDataReassigns 4030 UserDataRemoving 4031 UserLogoutActiveConnections 4034
UserLogoutActiveConnection 4035 UserLogoutActiveConnectionsForUser 4036
FileCreated 5000 FileRenamed 5001 FileUpdated 5002 UserFileUpdated 5034 FileCreatedVersion 5003
FileDeletedVersion 5004 FileRestoreVersion 5044 FileUpdatedRevisionComment 5005 FileLocked 5006
FileUnlocked 5007 FileUpdatedAccess 5008 FileUpdatedAccessFor 5068 FileSendAccessLink 5036
FileOpenedForChange 5054 FileRemovedFromList 5058 FileExternalLinkAccessUpdated 5060 FileDownloaded 5009
FileDownloadedAs 5010 FileRevisionDownloaded 5062 FileUploaded 5011 FileImported 5012
FileUploadedWithOverwriting 5099 FileCopied 5013 FileCopiedWithOverwriting 5014 FileMoved 5015
FileMovedWithOverwriting 5016 FileMovedToTrash 5017 FileDeleted 5018 FileVersionRemoved 5119
FileIndexChanged 5111 FileCustomFilterEnabled 5120 FileCustomFilterDisabled 5121 FolderCreated 5019
FolderRenamed 5020 FolderUpdatedAccess 5021 FolderUpdatedAccessFor 5066 FolderCopied 5022
FolderCopiedWithOverwriting 5023 FolderMoved 5024 FolderMovedWithOverwriting 5025 FolderMovedToTrash 5026
FolderDeleted 5027 FolderRemovedFromList 5059 FolderIndexChanged 5107 FolderIndexReordered 5108
FolderDownloaded 5057 FormSubmit 6046 FormOpenedForFilling 6047 ThirdPartyCreated 5028 ThirdPartyUpdated 5029
ThirdPartyDeleted 5030 DocumentsThirdPartySettingsUpdated 5031 DocumentsOverwritingSettingsUpdated 5032
DocumentsForcesave 5049 DocumentsStoreForcesave 5048 DocumentsUploadingFormatsSettingsUpdated 5033
DocumentsExternalShareSettingsUpdated 5069 DocumentsKeepNewFileNameSettingsUpdated 5083
DocumentsDisplayFileExtensionUpdated 5101 DocumentsShowQuickActionsUpdated 5207 FileConverted 5035
FileChangeOwner 5043 DocumentSignComplete 5046 DocumentSendToSign 5045 FileMarkedAsFavorite 5055
FileRemovedFromFavorite 5056 FileMarkedAsRead 5063 FileReaded 5064 TrashEmptied 5061 FolderMarkedAsRead 5065
RoomCreated 5070 RoomRenamed 5071 RoomArchived 5072 RoomUnarchived 5073 RoomDeleted 5074 RoomCopied 5100
RoomUpdateAccessForUser 5075 RoomRemoveUser 5084 RoomCreateUser 5085 RoomInvitationLinkUpdated 5082
RoomInvitationLinkCreated 5086 RoomInvitationLinkDeleted 5087 RoomGroupAdded 5094
RoomUpdateAccessForGroup 5095 RoomGroupRemove 5096 TagCreated 5076 TagsDeleted 5077 AddedRoomTags 5078
DeletedRoomTags 5079 RoomLogoCreated 5080 RoomLogoDeleted 5081 RoomColorChanged 5102 RoomCoverChanged 5103
RoomIndexingChanged 5104 RoomDenyDownloadChanged 5105 RoomExternalLinkCreated 5088
RoomExternalLinkUpdated 5089 RoomExternalLinkDeleted 5090 RoomExternalLinkRevoked 5097
RoomExternalLinkRenamed 5098 FileExternalLinkCreated 5091 FileExternalLinkUpdated 5092
FileExternalLinkDeleted 5093 FolderExternalLinkCreated 5122 FolderExternalLinkUpdated 5123
FolderExternalLinkDeleted 5124 RoomIndexingEnabled 5114 RoomIndexingDisabled 5115 RoomLifeTimeSet 5116
RoomLifeTimeDisabled 5117 RoomDenyDownloadEnabled 5109 RoomDenyDownloadDisabled 5110 RoomWatermarkSet 5112
RoomWatermarkDisabled 5113 RoomInviteResend 5118 RoomIndexExportSaved 5106 FormStartedToFill 5150
FormPartiallyFilled 5151 FormCompletelyFilled 5152 FormStopped 5153 AgentCreated 5154 AgentRenamed 5155
AgentDeleted 5156 AddedServerToAgent 5157 DeletedServerFromAgent 5158 RoomChangeOwner 5159
DocumentsDefaultTemplatesSettingsUpdated 5160 PrivacyRoomKeyCreated 5161 PrivacyRoomKeyUpdated 5162
PrivacyRoomKeyDeleted 5163 FileSavedButUserQuotaExceeded 5201 FileNotSavedDueToUserQuota 5202
FileSavedButRoomQuotaExceeded 5203 FileNotSavedDueToRoomQuota 5204 FileSavedButTenantQuotaExceeded 5205
FileNotSavedDueToTenantQuota 5206
LanguageSettingsUpdated 6000 TimeZoneSettingsUpdated 6001 DnsSettingsUpdated 6002
TrustedMailDomainSettingsUpdated 6003 PasswordStrengthSettingsUpdated 6004
TwoFactorAuthenticationSettingsUpdated 6005 AdministratorMessageSettingsUpdated 6006
DefaultStartPageSettingsUpdated 6007 ProductsListUpdated 6008 AdministratorAdded 6009
AdministratorOpenedFullAccess 6010 AdministratorDeleted 6011 UsersOpenedProductAccess 6012
GroupsOpenedProductAccess 6013 ProductAccessOpened 6014 ProductAccessRestricted 6015
ProductAddedAdministrator 6016 ProductDeletedAdministrator 6017 GreetingSettingsUpdated 6018
TeamTemplateChanged 6019 ColorThemeChanged 6020 OwnerSentChangeOwnerInstructions 6021 OwnerUpdated 6022
OwnerSentPortalDeactivationInstructions 6023 OwnerSentPortalDeleteInstructions 6024 PortalDeactivated 6025
PortalDeleted 6026 LoginHistoryReportDownloaded 6027 AuditTrailReportDownloaded 6028 SSOEnabled 6029
SSODisabled 6030 PortalAccessSettingsUpdated 6031 CookieSettingsUpdated 6032 MailServiceSettingsUpdated 6033
CustomNavigationSettingsUpdated 6034 AuditSettingsUpdated 6035 TwoFactorAuthenticationDisabled 6036
TwoFactorAuthenticationEnabledBySms 6037 TwoFactorAuthenticationEnabledByTfaApp 6038 PortalRenamed 6039
QuotaPerRoomChanged 6040 QuotaPerRoomDisabled 6041 QuotaPerUserChanged 6042 QuotaPerUserDisabled 6043
QuotaPerPortalChanged 6044 QuotaPerPortalDisabled 6045 CustomQuotaPerRoomDefault 6048
CustomQuotaPerRoomChanged 6049 CustomQuotaPerRoomDisabled 6050 CustomQuotaPerUserDefault 6051
CustomQuotaPerUserChanged 6052 CustomQuotaPerUserDisabled 6053 DevToolsAccessSettingsChanged 6054
WebhookCreated 6055 WebhookUpdated 6056 WebhookDeleted 6057 ApiKeyCreated 6058 ApiKeyUpdated 6059
ApiKeyDeleted 6060 DocumentServiceLocationSetting 5037 AuthorizationKeysSetting 5038
FullTextSearchSetting 5039 StartTransferSetting 5040 BackupStarted 5041 BackupCompleted 5125
BackupFailed 5126 ScheduledBackupStarted 5127 ScheduledBackupCompleted 5128 ScheduledBackupFailed 5129
ScheduledBackupDeleted 5130 BackupCancelled 5131 RestoreStarted 5132 RestoreCancelled 5133
LicenseKeyUploaded 5042 StartStorageEncryption 5050 StartStorageDecryption 5053
CustomerWalletToppedUp 6061 CustomerOperationPerformed 6062 CustomerOperationsReportDownloaded 6063
CustomerWalletTopUpSettingsUpdated 6064 CustomerSubscriptionUpdated 6065 BannerSettingsChanged 6066
CustomerWalletServicesSettingsUpdated 6067 QuotaPerAiAgentChanged 6068 QuotaPerAiAgentDisabled 6069
CustomQuotaPerAiAgentDefault 6070 CustomQuotaPerAiAgentChanged 6071 CustomQuotaPerAiAgentDisabled 6072
AIProviderCreated 6073 AIProviderUpdated 6074 AIProviderDeleted 6075 ServerCreated 6076 ServerUpdated 6077
ServerEnabled 6078 ServerDisabled 6079 ServerDeleted 6080 SetWebSearchSettings 6081
ResetWebSearchSettings 6082 SetVectorizationSettings 6083 ResetVectorizationSettings 6084
WebpluginUploaded 6085 WebpluginUpdated 6086 WebpluginDeleted 6087 WhiteLabelSettingsLogoTextUpdated 6088
WhiteLabelSettingsLogosUpdated 6089 WhiteLabelCompanySettingsUpdated 6090
WhiteLabelAdditionalSettingsUpdated 6091 WhiteLabelMailSettingsUpdated 6092 InvitationSettingsUpdated 6093
IPRestrictionsSettingsUpdated 6094 LoginSettingsUpdated 6095 AIDefaultProviderSet 6096 AIAccessEnabled 6097
AIAccessDisabled 6098 UserUpdatedAiSettings 6099 SubscriptionBalanceMovedToWallet 6100
DocsCloudConfigUpdated 6101 DocsCloudQuotaReportDownloaded 6102 AiProfileCreated 6103 AiProfileUpdated 6104
AiProfileDeleted 6105 AiProfileAssigned 6106 AiProfileUnassigned 6107 AiAgentProfileAssigned 6108
UpdatedServerOfAgent 6109
ContactAdminMailSent 7000 RoomInviteLinkUsed 7001 UserCreatedAndAddedToRoom 7002
GuestCreatedAndAddedToRoom 7003 ContactSalesMailSent 7004 SuspiciousLoginDetected 7005
CreateClient 9901 UpdateClient 9902 RegenerateSecret 9903 DeleteClient 9904 ChangeClientActivation 9905
ChangeClientVisibility 9906 RevokeUserClient 9907 GenerateAuthorizationCodeToken 9908
GeneratePersonalAccessToken 9909 MetadataTemplateCreated 9910 MetadataTemplateUpdated 9911
MetadataTemplateDeleted 9912 MetadataFieldCreated 9913 MetadataFieldUpdated 9914 MetadataFieldDeleted 9915
MetadataTemplateAssigned 9916 MetadataTemplateUnassigned 9917 MetadataValuesUpdated 9918
MetadataCascadeStarted 9919 LdapEnabled 5501 LdapDisabled 5502 LdapSync 5503
";

pub(crate) fn message_actions() -> impl Iterator<Item = (&'static str, i32)> {
    let mut it = MESSAGE_ACTIONS.split_whitespace();
    std::iter::from_fn(move || {
        let name = it.next()?;
        let code = it.next()?.parse().ok()?;
        Some((name, code))
    })
}

pub(crate) fn message_action_by_name(name: &str) -> Option<i32> {
    message_actions()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, c)| c)
}

pub(crate) fn message_action_defined(code: i64) -> bool {
    message_actions().any(|(_, c)| i64::from(c) == code)
}

/// English `action` texts of the login codes (`AuditReportResource.resx`).
pub(crate) const LOGIN_TEXTS: &[(i32, &str)] = &[
    (1000, "Login Success"),
    (1001, "Login Via Social Account Success"),
    (1002, "Login Fail. Invalid username-password combination"),
    (1003, "Login Fail. Associated Social Account Not Found"),
    (1004, "Login Fail. Profile Disabled"),
    (1005, "Login Fail"),
    (1006, "Logout"),
    (1007, "Login via SMS successful"),
    (1008, "Login via SMS failed"),
    (1009, "IP Security: Login Failed"),
    (1010, "Successful Login via API"),
    (1011, "Successful login via social application"),
    (1012, "Successful Login via API & SMS Code"),
    (1013, "Failed Login via API"),
    (1014, "Failed Login via API & SMS Code"),
    (1015, "Successful Login via SSO"),
    (1016, "Session Started"),
    (1017, "Session Completed"),
    (1018, "Login via SSO Failed"),
    (1019, "Login Via Social Account Success: {0}"),
    (1020, "Login via API & Social Media Failed"),
    (1021, "Successful Login via authenticator application"),
    (1022, "Login via authenticator application Failed"),
    (1023, "Login Fail. Too many attempts"),
    (1024, "Successful Login via API & authenticator application"),
    (1025, "Failed Login via API & authenticator application"),
    (1026, "Login Fail. Recaptcha is invalid"),
    (1027, "The authorization link has been activated"),
    (1028, "Successful Login via OAuth 2.0"),
    (1029, "Login success via login and password"),
];

pub(crate) fn login_text(code: i32) -> &'static str {
    LOGIN_TEXTS
        .iter()
        .find(|(c, _)| *c == code)
        .map_or("", |(_, t)| *t)
}

/// Login codes that the builders treat as failures (Guest GUID, `login` = typed name).
pub(crate) fn is_login_failure(code: i32) -> bool {
    matches!(
        code,
        1002..=1005 | 1008 | 1009 | 1013 | 1014 | 1018 | 1020 | 1022 | 1023 | 1025 | 1026
    )
}

/// One audit action mapping (`Mappers/*.cs` and the resx text).
#[derive(Debug)]
pub(crate) struct AuditMap {
    pub(crate) code: i32,
    pub(crate) template: &'static str,
    pub(crate) action_type: i32,
    pub(crate) product: i32,
    pub(crate) location: i32,
    pub(crate) entries: &'static [i32],
}

pub(crate) const AUDIT_MAPS: &[AuditMap] = &[
    AuditMap {
        code: 5000,
        template: "File Created: {0}",
        action_type: 1,
        product: 2,
        location: 1,
        entries: &[1],
    },
    AuditMap {
        code: 5002,
        template: "File Updated: {0}",
        action_type: 2,
        product: 2,
        location: 1,
        entries: &[1],
    },
    AuditMap {
        code: 5008,
        template: "Files [{0}]. Access Updated",
        action_type: 11,
        product: 2,
        location: 1,
        entries: &[1],
    },
    AuditMap {
        code: 5009,
        template: "File Downloaded: {0}",
        action_type: 12,
        product: 2,
        location: 1,
        entries: &[1],
    },
    AuditMap {
        code: 5011,
        template: "File Uploaded: {0}",
        action_type: 13,
        product: 2,
        location: 1,
        entries: &[1],
    },
    AuditMap {
        code: 5017,
        template: "Files [{0}]. Moved To Trash Folder",
        action_type: 15,
        product: 2,
        location: 1,
        entries: &[1],
    },
    AuditMap {
        code: 5018,
        template: "File Deleted: {0}",
        action_type: 3,
        product: 2,
        location: 1,
        entries: &[1],
    },
    AuditMap {
        code: 5019,
        template: "Folder Created: {0}",
        action_type: 1,
        product: 2,
        location: 2,
        entries: &[2],
    },
    AuditMap {
        code: 5070,
        template: "Room created",
        action_type: 1,
        product: 2,
        location: 27,
        entries: &[25],
    },
    AuditMap {
        code: 4000,
        template: "User Created: {0}",
        action_type: 1,
        product: 8,
        location: 30,
        entries: &[23],
    },
    AuditMap {
        code: 4006,
        template: "User Updated: {0}",
        action_type: 2,
        product: 8,
        location: 30,
        entries: &[23],
    },
    AuditMap {
        code: 4018,
        template: "User Deleted: {0}",
        action_type: 3,
        product: 8,
        location: 30,
        entries: &[23],
    },
    AuditMap {
        code: 6027,
        template: "Login History Report Downloaded",
        action_type: 12,
        product: 7,
        location: 29,
        entries: &[],
    },
    AuditMap {
        code: 6028,
        template: "Audit Trail Report Downloaded",
        action_type: 12,
        product: 7,
        location: 29,
        entries: &[],
    },
    AuditMap {
        code: 6035,
        template: "Audit Lifetime Settings Updated",
        action_type: 2,
        product: 7,
        location: 29,
        entries: &[],
    },
];

pub(crate) fn audit_map(code: i32) -> Option<&'static AuditMap> {
    AUDIT_MAPS.iter().find(|m| m.code == code)
}

/// Fills `{0}` like the server: the raw value is split on `,` and re-joined with `", "`.
pub(crate) fn render_template(template: &str, value: &str) -> String {
    if !template.contains("{0}") {
        return template.to_owned();
    }
    let joined = value
        .split(',')
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(", ");
    template.replace("{0}", &joined)
}
