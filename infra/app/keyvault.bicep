// Key Vault for provider API keys. Authorization is Azure RBAC only (no access policies):
// the app's identity reads secrets (Key Vault Secrets User) and the deployer writes them (Key
// Vault Secrets Officer), both granted in rbac.bicep. The template never writes a secret
// value, so re-provisioning never overwrites a key set after deployment.

@description('Key Vault name (3-24 letters, digits and hyphens).')
@minLength(3)
@maxLength(24)
param name string

@description('Azure region.')
param location string

@description('Tags for the resource.')
param tags object = {}

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 90
    enablePurgeProtection: true
    enabledForDeployment: false
    enabledForDiskEncryption: false
    enabledForTemplateDeployment: false
    // Key Vault references are resolved by App Service over the vault's public endpoint (the
    // app has no VNet integration); every request still needs an Entra token and a role.
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
  }
}

output id string = vault.id
output name string = vault.name
output uri string = vault.properties.vaultUri
