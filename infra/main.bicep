// evalruns on Azure: everything the app needs, in a resource group this template creates.
//
//   azd up                                         (parameters from main.parameters.json)
//   az deployment sub create --location <region> --template-file infra/main.bicep \
//      --parameters environmentName=<name> location=<region> principalId=<your object id>
//
// Modules (infra/app/): identity, storage, monitoring, keyvault, rbac, durable-task-scheduler
// (only with useDurableTaskScheduler) and function-app. Checked offline by tests/infra.

targetScope = 'subscription'

@minLength(1)
@maxLength(48)
@description('Environment name (azd: AZURE_ENV_NAME). Names the resource group and seeds the unique suffix of every resource name.')
param environmentName string

@minLength(1)
@description('Azure region of every resource. It must offer Flex Consumption (az functionapp list-flexconsumption-locations) and, with useDurableTaskScheduler, the Durable Task Scheduler.')
@metadata({
  azd: {
    type: 'location'
  }
})
param location string

@description('Object id of the deployer (azd: AZURE_PRINCIPAL_ID). Gets Key Vault Secrets Officer to set provider keys (and dashboard access to the scheduler). Empty: no deployer roles.')
param principalId string = ''

@description('Principal type of principalId: User for a person, ServicePrincipal for a CI identity.')
@allowed([
  'User'
  'Group'
  'ServicePrincipal'
])
param principalType string = 'User'

// ---- Names: empty means a generated name (type abbreviation + unique suffix). ----

@description('Resource group name. Default: rg-<environmentName>.')
param resourceGroupName string = ''

@description('Function app name (the API is https://<name>.azurewebsites.net/api).')
param functionAppName string = ''

@description('Flex Consumption plan name.')
param appServicePlanName string = ''

@description('User-assigned managed identity name.')
param identityName string = ''

@description('Storage account name (3-24 lowercase letters and digits, globally unique).')
param storageAccountName string = ''

@description('Key Vault name (3-24 letters, digits, hyphens, globally unique).')
param keyVaultName string = ''

@description('Log Analytics workspace name.')
param logAnalyticsName string = ''

@description('Application Insights name.')
param applicationInsightsName string = ''

@description('Durable Task Scheduler name (used only with useDurableTaskScheduler).')
param durableTaskSchedulerName string = ''

// ---- Scale ----

@description('Most instances the app scales out to (Flex Consumption: 1-1000).')
@minValue(1)
@maxValue(1000)
param maximumInstanceCount int = 100

@description('Memory per instance in MB (Flex Consumption sizes).')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@description('Always-ready instances of the durable trigger group. 0 (default): the app scales to zero. With useDurableTaskScheduler, 1 keeps orchestrations moving (README, Durable backend).')
@minValue(0)
@maxValue(20)
param durableAlwaysReadyInstances int = 0

@description('Storage replication (geo-redundant by default: the account holds every record).')
@allowed([
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GRS'
  'Standard_GZRS'
  'Standard_RAGRS'
  'Standard_RAGZRS'
])
param storageSkuName string = 'Standard_GRS'

// ---- Durable Functions backend ----

@description('false: Azure Storage backend (queues and tables of the storage account). true: Durable Task Scheduler; the template adds the scheduler, its task hub, the role assignment and the app settings that switch host.json.')
param useDurableTaskScheduler bool = false

@description('Durable Task Scheduler SKU (with useDurableTaskScheduler).')
@allowed([
  'Consumption'
  'Dedicated'
])
param durableTaskSchedulerSku string = 'Consumption'

@description('Durable task hub name (EVALRUNS_TASK_HUB, read by host.json); also the scheduler task hub name. Letters and digits, starting with a letter.')
@minLength(3)
@maxLength(45)
param taskHubName string = 'evalruns'

// ---- evalruns settings (README, Configuration) ----

@description('EVALRUNS_TABLE_PREFIX: prefix of the tables <prefix>Definitions, Runs, Jobs, Transcripts.')
@minLength(1)
@maxLength(41)
param tablePrefix string = 'evalruns'

@description('EVALRUNS_EXPORTS_CONTAINER: private container of CSV exports.')
param exportsContainerName string = 'evalruns-exports'

@description('EVALRUNS_SPILL_CONTAINER: private container of transcript content too large for a table entity.')
param spillContainerName string = 'evalruns-content'

@description('EVALRUNS_SAS_EXPIRY_MINUTES: lifetime of export download links (a user delegation key lives at most 7 days).')
@minValue(1)
@maxValue(10080)
param sasExpiryMinutes int = 60

@description('EVALRUNS_SUMMARISER_MODEL: model that writes decision texts.')
param summariserModel string = 'mock-small'

@description('EVALRUNS_MAX_ATTEMPTS: attempts per job for retryable provider errors.')
@minValue(1)
@maxValue(20)
param maxAttempts int = 4

@description('EVALRUNS_PROVIDER_TIMEOUT_SECONDS: timeout of one provider call.')
@minValue(1)
param providerTimeoutSeconds int = 120

@description('Comma-separated provider key variables to wire to Key Vault, e.g. "OPENAI_API_KEY,MISTRAL_API_KEY". Each becomes an app setting @Microsoft.KeyVault(VaultName=<vault>;SecretName=<name with _ as ->). Set the secret first: an unresolved reference reaches the app as its literal text.')
param providerKeys string = ''

// Provider endpoints are not secrets: plain app settings, only when set (empty: the
// catalog default). One parameter per endpoint variable of evalruns/providers/catalog.json.

@description('OPENAI_BASE_URL: another OpenAI-compatible server for the openai provider.')
param openAiBaseUrl string = ''

@description('AZURE_OPENAI_ENDPOINT: https://<resource>.openai.azure.com (Azure OpenAI provider).')
param azureOpenAiEndpoint string = ''

@description('AZURE_OPENAI_API_VERSION: Azure OpenAI API version. Empty: evalruns default.')
param azureOpenAiApiVersion string = ''

@description('ANTHROPIC_BASE_URL: another Anthropic Messages endpoint.')
param anthropicBaseUrl string = ''

@description('GOOGLE_GEMINI_BASE_URL: another Gemini generateContent endpoint.')
param geminiBaseUrl string = ''

@description('EVALRUNS_LOCAL_OPENAI_BASE_URL: an OpenAI-compatible server reachable from Azure (local provider).')
param localOpenAiBaseUrl string = ''

// ---- Derived values ----

var abbreviations = loadJsonContent('abbreviations.json')
var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = {
  'azd-env-name': environmentName
  application: 'evalruns'
}

var names = {
  resourceGroup: !empty(resourceGroupName) ? resourceGroupName : '${abbreviations.resourceGroup}${environmentName}'
  functionApp: !empty(functionAppName) ? functionAppName : '${abbreviations.functionApp}${resourceToken}'
  plan: !empty(appServicePlanName) ? appServicePlanName : '${abbreviations.appServicePlan}${resourceToken}'
  identity: !empty(identityName) ? identityName : '${abbreviations.managedIdentity}${resourceToken}'
  storage: !empty(storageAccountName) ? storageAccountName : '${abbreviations.storageAccount}${resourceToken}'
  keyVault: !empty(keyVaultName) ? keyVaultName : '${abbreviations.keyVault}${resourceToken}'
  logAnalytics: !empty(logAnalyticsName) ? logAnalyticsName : '${abbreviations.logAnalytics}${resourceToken}'
  applicationInsights: !empty(applicationInsightsName) ? applicationInsightsName : '${abbreviations.applicationInsights}${resourceToken}'
  scheduler: !empty(durableTaskSchedulerName) ? durableTaskSchedulerName : '${abbreviations.durableTaskScheduler}${resourceToken}'
}

// Flex Consumption reads the app package from this private container, with the identity.
var deploymentContainerName = 'app-package-${take(resourceToken, 7)}'

// evalruns' tables (evalruns/storage/clients.py TABLES), created here so nothing has to be
// created at run time; evalruns still creates any that are missing.
var tableNames = [
  '${tablePrefix}Definitions'
  '${tablePrefix}Runs'
  '${tablePrefix}Jobs'
  '${tablePrefix}Transcripts'
  '${tablePrefix}Incidents'
]

// Every provider key variable of evalruns/providers/catalog.json (tests/infra checks the two
// lists agree). Only the ones named in providerKeys become app settings.
var knownProviderKeys = [
  'OPENAI_API_KEY'
  'XAI_API_KEY'
  'DEEPSEEK_API_KEY'
  'MISTRAL_API_KEY'
  'AZURE_OPENAI_API_KEY'
  'ANTHROPIC_API_KEY'
  'GEMINI_API_KEY'
  'EVALRUNS_LOCAL_OPENAI_API_KEY'
]
var requestedProviderKeys = split(toUpper(replace(providerKeys, ' ', '')), ',')
var providerKeyNames = intersection(knownProviderKeys, requestedProviderKeys)
var providerKeySettings = [
  for keyName in providerKeyNames: {
    name: keyName
    value: '@Microsoft.KeyVault(VaultName=${names.keyVault};SecretName=${replace(keyName, '_', '-')})'
  }
]

// Every endpoint (base URL, API version) variable of the catalog, from its parameter.
var providerEndpoints = {
  OPENAI_BASE_URL: openAiBaseUrl
  AZURE_OPENAI_ENDPOINT: azureOpenAiEndpoint
  AZURE_OPENAI_API_VERSION: azureOpenAiApiVersion
  ANTHROPIC_BASE_URL: anthropicBaseUrl
  GOOGLE_GEMINI_BASE_URL: geminiBaseUrl
  EVALRUNS_LOCAL_OPENAI_BASE_URL: localOpenAiBaseUrl
}
var providerEndpointSettingList = [
  for endpoint in items(providerEndpoints): {
    name: endpoint.key
    value: endpoint.value
  }
]
var providerEndpointSettings = filter(providerEndpointSettingList, setting => !empty(setting.value))

var evalrunsSettings = [
  {
    // No connection string in Azure: evalruns reaches this account with the managed identity
    // and signs export links with a user delegation key.
    name: 'EVALRUNS_STORAGE_ACCOUNT_NAME'
    value: names.storage
  }
  {
    name: 'EVALRUNS_TABLE_PREFIX'
    value: tablePrefix
  }
  {
    name: 'EVALRUNS_EXPORTS_CONTAINER'
    value: exportsContainerName
  }
  {
    name: 'EVALRUNS_SPILL_CONTAINER'
    value: spillContainerName
  }
  {
    name: 'EVALRUNS_SAS_EXPIRY_MINUTES'
    value: string(sasExpiryMinutes)
  }
  {
    name: 'EVALRUNS_TASK_HUB'
    value: taskHubName
  }
  {
    name: 'EVALRUNS_SUMMARISER_MODEL'
    value: summariserModel
  }
  {
    name: 'EVALRUNS_MAX_ATTEMPTS'
    value: string(maxAttempts)
  }
  {
    name: 'EVALRUNS_PROVIDER_TIMEOUT_SECONDS'
    value: string(providerTimeoutSeconds)
  }
]

// host.json keeps the Azure Storage backend; these settings override its
// extensions.durableTask.storageProvider (AzureFunctionsJobHost__<path> = host.json <path>).
var durableTaskSchedulerSettingList = [
  {
    name: 'DURABLE_TASK_SCHEDULER_CONNECTION_STRING'
    value: 'Endpoint=${durableTaskScheduler.outputs.endpoint};Authentication=ManagedIdentity;ClientID=${identity.outputs.clientId}'
  }
  {
    name: 'AzureFunctionsJobHost__extensions__durableTask__storageProvider__type'
    value: 'azureManaged'
  }
  {
    name: 'AzureFunctionsJobHost__extensions__durableTask__storageProvider__connectionStringName'
    value: 'DURABLE_TASK_SCHEDULER_CONNECTION_STRING'
  }
]
var durableTaskSchedulerSettings = useDurableTaskScheduler ? durableTaskSchedulerSettingList : []

// ---- Resources ----

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: names.resourceGroup
  location: location
  tags: tags
}

module identity 'app/identity.bicep' = {
  name: 'identity'
  scope: rg
  params: {
    name: names.identity
    location: location
    tags: tags
  }
}

module storage 'app/storage.bicep' = {
  name: 'storage'
  scope: rg
  params: {
    name: names.storage
    location: location
    tags: tags
    storageSkuName: storageSkuName
    deploymentContainerName: deploymentContainerName
    containerNames: [
      exportsContainerName
      spillContainerName
    ]
    tableNames: tableNames
  }
}

module monitoring 'app/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: {
    logAnalyticsName: names.logAnalytics
    applicationInsightsName: names.applicationInsights
    location: location
    tags: tags
  }
}

module keyVault 'app/keyvault.bicep' = {
  name: 'keyvault'
  scope: rg
  params: {
    name: names.keyVault
    location: location
    tags: tags
  }
}

module rbac 'app/rbac.bicep' = {
  name: 'rbac'
  scope: rg
  params: {
    storageAccountName: storage.outputs.name
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    keyVaultName: keyVault.outputs.name
    appPrincipalId: identity.outputs.principalId
    deployerPrincipalId: principalId
    deployerPrincipalType: principalType
  }
}

module durableTaskScheduler 'app/durable-task-scheduler.bicep' = if (useDurableTaskScheduler) {
  name: 'durable-task-scheduler'
  scope: rg
  params: {
    name: names.scheduler
    location: location
    tags: tags
    taskHubName: taskHubName
    schedulerSkuName: durableTaskSchedulerSku
    appPrincipalId: identity.outputs.principalId
    deployerPrincipalId: principalId
    deployerPrincipalType: principalType
  }
}

module functionApp 'app/function-app.bicep' = {
  name: 'function-app'
  scope: rg
  params: {
    name: names.functionApp
    planName: names.plan
    location: location
    tags: tags
    pythonVersion: '3.12'
    maximumInstanceCount: maximumInstanceCount
    instanceMemoryMB: instanceMemoryMB
    durableAlwaysReadyInstances: durableAlwaysReadyInstances
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    blobEndpoint: storage.outputs.blobEndpoint
    queueEndpoint: storage.outputs.queueEndpoint
    tableEndpoint: storage.outputs.tableEndpoint
    deploymentContainerName: deploymentContainerName
    applicationInsightsConnectionString: monitoring.outputs.applicationInsightsConnectionString
    appSettings: concat(evalrunsSettings, providerEndpointSettings, providerKeySettings, durableTaskSchedulerSettings)
  }
  // The app starts with its roles in place (storage, telemetry, Key Vault references).
  dependsOn: [
    rbac
  ]
}

// ---- Outputs (azd stores them in .azure/<env>/.env: azd env get-value NAME) ----

output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_FUNCTION_APP_NAME string = functionApp.outputs.name
output AZURE_FUNCTION_APP_URL string = 'https://${functionApp.outputs.defaultHostName}'
output EVALRUNS_URL string = 'https://${functionApp.outputs.defaultHostName}'
output AZURE_KEY_VAULT_NAME string = keyVault.outputs.name
output AZURE_KEY_VAULT_URI string = keyVault.outputs.uri
output AZURE_STORAGE_ACCOUNT_NAME string = storage.outputs.name
output AZURE_USER_ASSIGNED_IDENTITY_CLIENT_ID string = identity.outputs.clientId
output APPLICATIONINSIGHTS_NAME string = monitoring.outputs.applicationInsightsName
output EVALRUNS_TASK_HUB string = taskHubName
output DURABLE_BACKEND string = useDurableTaskScheduler ? 'DurableTaskScheduler' : 'AzureStorage'
output DURABLE_TASK_SCHEDULER_NAME string = useDurableTaskScheduler ? names.scheduler : ''
output DURABLE_TASK_SCHEDULER_ENDPOINT string = useDurableTaskScheduler ? durableTaskScheduler.outputs.endpoint : ''
